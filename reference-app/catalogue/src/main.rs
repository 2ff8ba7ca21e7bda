#[tokio::main]
async fn main() -> std::process::ExitCode {
    shop_common::server::main("catalogue", shop_catalogue::build).await
}
