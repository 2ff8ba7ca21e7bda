//! One module per command.
pub mod down;
pub mod status;
pub mod up;
