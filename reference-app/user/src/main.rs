fn main() -> std::process::ExitCode {
    // Before any thread exists: the allocator's settings are process-wide.
    shop_user::tame_allocator();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(shop_common::server::main("user", shop_user::build)),
        Err(e) => {
            eprintln!("shop-user: cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
