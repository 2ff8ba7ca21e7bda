#[tokio::main]
async fn main() -> std::process::ExitCode {
    shop_common::server::main("user", shop_user::build).await
}
