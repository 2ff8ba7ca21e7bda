#[tokio::main]
async fn main() -> std::process::ExitCode {
    shop_common::server::main("shipping", shop_shipping::build).await
}
