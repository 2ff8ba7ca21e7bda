#[tokio::main]
async fn main() -> std::process::ExitCode {
    shop_common::server::main("web", shop_web::build).await
}
