//! The scenario file. Today only its `target` section (the topology the
//! local platform deploys) is read; the rest of the file is the subject of
//! the `gameday run` work.
//!
//! YAML is parsed with serde_yaml_ng, the maintained fork of the deprecated
//! serde_yaml: errors carry line and column, and it refuses deep nesting and
//! runaway alias expansion. serde-saphyr was the alternative (newer parser,
//! budgets for bombs); serde_yaml_ng won on maturity and on sharing the
//! serde_yaml API k8s tooling uses.

pub mod target;

pub use target::{Autoscale, Topology};
