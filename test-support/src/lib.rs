//! What gameday's unit tests (src/) and integration tests (tests/it) share,
//! in one place instead of a file included twice: the stand-ins they start.

pub mod moto;
