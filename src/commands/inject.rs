//! `gameday inject KIND [args]`: one fault, now. The fault is built from the
//! arguments as a typed value and validated like a scenario's (same keys,
//! same errors). On the local stack `gameday up` started, it goes to the
//! stack's supervisor over its control socket (the supervisor undoes a
//! lasting fault after its duration, or when the stack stops); with
//! `--scenario` on a cloud platform, this process applies it, waits out its
//! duration and undoes it (at once on Ctrl-C).

use std::{path::PathBuf, time::Duration};

use serde_yaml_ng::{Mapping, Value};

use crate::{
    chaos,
    events::EventLog,
    exit_codes,
    platform::{self, Injected, Injector, Support},
    scenario::Fault,
};

/// The fault kinds, as the scenario spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    KillPod,
    TerminateInstance,
    DbFailover,
    RestartCache,
    RestartBroker,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::KillPod => "kill-pod",
            Kind::TerminateInstance => "terminate-instance",
            Kind::DbFailover => "db-failover",
            Kind::RestartCache => "restart-cache",
            Kind::RestartBroker => "restart-broker",
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct InjectArgs {
    pub kind: Kind,
    /// kill-pod: the service whose replicas to kill.
    #[arg(long)]
    pub service: Option<String>,
    /// How many targets (kill-pod, terminate-instance).
    #[arg(long)]
    pub count: Option<u32>,
    /// A share of the candidates instead of a count, such as 50%.
    #[arg(long)]
    pub percent: Option<String>,
    /// The most targets a percent may hit.
    #[arg(long)]
    pub max: Option<u32>,
    /// terminate-instance: only instances in this availability zone.
    #[arg(long)]
    pub zone: Option<String>,
    /// kill-pod: stop gracefully (SIGTERM, the pod's grace period).
    #[arg(long)]
    pub graceful: bool,
    /// restart-cache, restart-broker: keep the server down this long (such as 10s).
    #[arg(long)]
    pub duration: Option<String>,
    /// db-failover: do not build a new standby afterwards.
    #[arg(long)]
    pub no_rebuild: bool,
    /// Act on this scenario's platform (default: the local stack `up` started).
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Do not ask for confirmation on a real cloud or cluster.
    #[arg(long)]
    pub yes: bool,
}

/// The fault the arguments describe, as a scenario's `faults` entry.
fn fault_value(args: &InjectArgs) -> Value {
    let mut fields = Mapping::new();
    let mut set = |k: &str, v: Value| {
        fields.insert(Value::from(k), v);
    };
    if let Some(s) = &args.service {
        set("service", Value::from(s.as_str()));
    }
    if let Some(n) = args.count {
        set("count", Value::from(n));
    }
    if let Some(p) = &args.percent {
        set("percent", Value::from(p.as_str()));
    }
    if let Some(m) = args.max {
        set("max", Value::from(m));
    }
    if let Some(z) = &args.zone {
        set("zone", Value::from(z.as_str()));
    }
    if args.graceful {
        set("graceful", Value::from(true));
    }
    if args.no_rebuild {
        set("rebuild-standby", Value::from(false));
    }
    let mut fault = Mapping::new();
    fault.insert(
        Value::from("name"),
        Value::from(format!("{} (by hand)", args.kind.key())),
    );
    fault.insert(Value::from("at"), Value::from("0s"));
    if let Some(d) = &args.duration {
        fault.insert(Value::from("duration"), Value::from(d.as_str()));
    }
    fault.insert(Value::from(args.kind.key()), Value::Mapping(fields));
    Value::Mapping(fault)
}

fn print_hit(kind: &str, injected: &Injected) {
    let targets: Vec<String> = injected.targets.iter().map(|t| t.describe()).collect();
    println!("{kind} ({}) hit: {}", injected.id, targets.join(", "));
}

pub async fn run(args: InjectArgs) -> anyhow::Result<i32> {
    let fault = match Fault::from_value(fault_value(&args)) {
        Ok(f) => f,
        Err(problems) => {
            for (key, message) in problems {
                eprintln!("gameday: inject {}: {key}: {message}", args.kind.key());
            }
            return Ok(exit_codes::USAGE);
        }
    };
    let spec = match super::load_target(args.scenario.as_deref()) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    if let Some(spec) = &spec {
        if let Support::No { why } = platform::backend(spec).supports(&fault) {
            eprintln!(
                "gameday: the {} platform cannot {}: {why}",
                spec.name(),
                args.kind.key()
            );
            return Ok(exit_codes::USAGE);
        }
        if !super::confirm(spec, args.yes).await? {
            return Ok(exit_codes::ERROR);
        }
    }
    let backend = platform::backend(&spec.unwrap_or_default());
    match backend.injector().await? {
        Injector::Remote(remote) => {
            let injected = match remote.inject(&fault).await {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("gameday: {e}");
                    return Ok(exit_codes::ERROR);
                }
            };
            print_hit(args.kind.key(), &injected);
            if let Some(s) = injected.undo_after_s {
                println!("It is undone in {s:.0} s (or when the stack stops).");
            }
            println!("Watch: gameday status; events in the stack's events.jsonl");
            Ok(exit_codes::OK)
        }
        Injector::Here(platform) => {
            let events = EventLog::new(None)?;
            let rollback = chaos::Rollback::default();
            let applied = chaos::apply(&*platform, &events, &rollback, &fault).await;
            let code = match applied {
                Err(e) => {
                    eprintln!("gameday: {e}");
                    exit_codes::ERROR
                }
                Ok(injected) => {
                    print_hit(args.kind.key(), &injected);
                    if let Some(s) = injected.undo_after_s {
                        println!("Holding it for {s:.0} s; Ctrl-C undoes it now.");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs_f64(s)) => {}
                            _ = tokio::signal::ctrl_c() => {}
                        }
                    }
                    exit_codes::OK
                }
            };
            rollback.run_all(&*platform, &events).await;
            platform.shutdown().await;
            Ok(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{BlastRadius, FaultKind};

    fn args(kind: Kind) -> InjectArgs {
        InjectArgs {
            kind,
            service: None,
            count: None,
            percent: None,
            max: None,
            zone: None,
            graceful: false,
            duration: None,
            no_rebuild: false,
            scenario: None,
            yes: false,
        }
    }

    #[test]
    fn arguments_become_a_fault_validated_like_a_scenario_s() {
        let mut a = args(Kind::KillPod);
        a.service = Some("cart".into());
        a.percent = Some("50%".into());
        a.max = Some(2);
        let f = Fault::from_value(fault_value(&a)).unwrap();
        assert_eq!(
            f.kind,
            FaultKind::KillPod {
                service: "cart".into(),
                radius: BlastRadius::Percent {
                    percent: 50.0,
                    max: Some(2)
                },
                graceful: false
            }
        );
        // No service: refused with the key, as in a scenario.
        let e = Fault::from_value(fault_value(&args(Kind::KillPod))).unwrap_err();
        assert!(
            e.iter()
                .any(|(k, m)| k.contains("kill-pod") && m.contains("service")),
            "{e:?}"
        );
        let mut d = args(Kind::RestartCache);
        d.duration = Some("soon".into());
        let e = Fault::from_value(fault_value(&d)).unwrap_err();
        assert_eq!(e[0].0, "duration", "{e:?}");
    }
}
