//! scripts/cluster.sh check-clean, the check CI runs after
//! `scripts/cluster.sh down`: it must name what a cluster left behind, or
//! a clean machine proves nothing. Needs root (as the cluster does): it
//! makes a network namespace and a veth of the cluster's kind, runs the
//! check, and removes them.

use std::process::Command;

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .expect("ip (iproute2) is installed")
        .success()
}

/// Removes the leftovers even when an assertion fails.
struct Leftovers {
    netns: String,
    veth: String,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}

#[test]
fn check_clean_names_a_network_namespace_and_an_interface_a_cluster_left_behind() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cluster.sh");
    let id = std::process::id() % 100_000;
    let left = Leftovers {
        netns: format!("gameday-leftover-{id}"),
        veth: format!("gdcv9{id}"),
    };
    assert!(
        ip(&["netns", "add", &left.netns]),
        "making a network namespace needs root"
    );
    assert!(ip(&[
        "link",
        "add",
        &left.veth,
        "type",
        "veth",
        "peer",
        "name",
        &format!("{}p", left.veth)
    ]));

    let dirty = Command::new(script).arg("check-clean").output().unwrap();
    drop(left);
    let after = Command::new(script).arg("check-clean").output().unwrap();

    let out = String::from_utf8_lossy(&dirty.stdout);
    assert_eq!(dirty.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "left behind: network namespace gameday-leftover-{id}"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("left behind: interface gdcv9{id}")),
        "{out}"
    );
    let out = String::from_utf8_lossy(&after.stdout);
    assert!(
        !out.contains(&format!("gameday-leftover-{id}")) && !out.contains(&format!("gdcv9{id}")),
        "removed, no longer named: {out}"
    );
}
