//! One module per command.
pub mod down;
pub mod inject;
pub mod plan;
pub mod run;
pub mod status;
pub mod up;
pub mod validate;

/// Checks that the servers and the shop's binaries are installed; an exit
/// code (2) if not, after saying what is missing and how to install it.
pub fn preflight() -> Option<i32> {
    use crate::platform::local::{process, shop};
    let missing = process::preflight().and_then(|_| {
        shop::SERVICES
            .iter()
            .try_for_each(|s| shop::binary(s).map(|_| ()))
    });
    match missing {
        Ok(()) => None,
        Err(e) => {
            eprintln!("gameday: {e}");
            Some(crate::exit_codes::USAGE)
        }
    }
}
