#[tokio::main]
async fn main() -> std::process::ExitCode {
    shop_common::server::main("cart", shop_cart::build).await
}
