//! One module per command.
pub mod down;
pub mod plan;
pub mod status;
pub mod up;
pub mod validate;
