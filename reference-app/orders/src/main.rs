#[tokio::main]
async fn main() -> std::process::ExitCode {
    shop_common::server::main("orders", shop_orders::build).await
}
