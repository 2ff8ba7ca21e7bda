//! The database's connection budget: every shop instance holds a MariaDB
//! pool per service that uses the database, so the group's maximum size
//! times those pools must fit the instance class's `max_connections`, or
//! a scale-out ends in "Too many connections" exactly when the shop is
//! busiest. `plan` warns when it does not fit.
//!
//! RDS for MariaDB's default `max_connections` is
//! `{DBInstanceClassMemory/12582880}` (Amazon RDS User Guide, "Maximum
//! MariaDB connections"); DBInstanceClassMemory is the class's memory less
//! what the OS and RDS keep, so the class's nominal memory gives an upper
//! bound and nine tenths of it the figure to plan with.

/// The shop's services that open a MariaDB pool (user, catalogue, orders,
/// shipping; web and cart do not).
pub const DATABASE_SERVICES: u32 = 4;

/// The shop's own default pool size (SHOP_MYSQL_POOL_SIZE unset).
pub const SHOP_DEFAULT_POOL: u32 = 16;

/// The template's `DatabasePoolSize` default.
pub const TEMPLATE_DEFAULT_POOL: u32 = 12;

const BYTES_PER_CONNECTION: u64 = 12_582_880;

/// The nominal memory of an RDS instance class in GiB, for the common
/// burstable (t3, t4g), general-purpose (m5, m6g, m6i, m7g) and
/// memory-optimised (r5, r6g, r6i, r7g) classes.
pub fn class_memory_gib(class: &str) -> Option<u64> {
    let mut parts = class.strip_prefix("db.")?.split('.');
    let family = parts.next()?;
    let size = parts.next()?;
    let ratio = match family.chars().next()? {
        't' => {
            return match size {
                "micro" => Some(1),
                "small" => Some(2),
                "medium" => Some(4),
                "large" => Some(8),
                "xlarge" => Some(16),
                "2xlarge" => Some(32),
                _ => None,
            };
        }
        'm' => 4,
        'r' => 8,
        _ => return None,
    };
    let vcpus = match size {
        "large" => 2,
        "xlarge" => 4,
        other => 4 * other.strip_suffix("xlarge")?.parse::<u64>().ok()?,
    };
    Some(vcpus * ratio)
}

/// RDS MariaDB's default `max_connections` on `class`: (about, at most).
pub fn max_connections(class: &str) -> Option<(u64, u64)> {
    let bytes = class_memory_gib(class)? * 1024 * 1024 * 1024;
    let at_most = bytes / BYTES_PER_CONNECTION;
    Some(((at_most * 9 + 5) / 10, at_most))
}

/// What the shop can open at its largest: instances x services x pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demand {
    pub instances: u32,
    pub pool: u32,
}

impl Demand {
    pub fn connections(self) -> u64 {
        u64::from(self.instances) * u64::from(DATABASE_SERVICES) * u64::from(self.pool)
    }
}

/// A warning when `demand` does not fit the class's connections; None when
/// it fits or the class is unknown.
pub fn warning(class: &str, demand: Demand) -> Option<String> {
    let (about, at_most) = max_connections(class)?;
    let wanted = demand.connections();
    (wanted > about).then(|| {
        format!(
            "connection budget: {} instances x {DATABASE_SERVICES} services x {} pooled \
             connections = {wanted}, but {class} allows about {about} (at most {at_most}; RDS \
             MariaDB's default max_connections is DBInstanceClassMemory/12582880): lower the \
             stack's DatabasePoolSize or MaxSize, or choose a larger DatabaseInstanceClass",
            demand.instances, demand.pool
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_s_class_allows_about_300_connections() {
        assert_eq!(max_connections("db.t3.medium"), Some((307, 341)));
        assert_eq!(class_memory_gib("db.r6g.2xlarge"), Some(64));
        assert_eq!(class_memory_gib("db.m5.large"), Some(8));
        assert_eq!(class_memory_gib("db.x2g.large"), None);
    }

    #[test]
    fn six_instances_with_the_shop_s_default_pools_do_not_fit_a_t3_medium_and_the_template_s_do() {
        let default_pools = Demand {
            instances: 6,
            pool: SHOP_DEFAULT_POOL,
        };
        assert_eq!(default_pools.connections(), 384);
        let w = warning("db.t3.medium", default_pools).expect("384 > 307");
        assert!(w.contains("= 384") && w.contains("about 307"), "{w}");
        let template = Demand {
            instances: 6,
            pool: TEMPLATE_DEFAULT_POOL,
        };
        assert_eq!(template.connections(), 288);
        assert_eq!(warning("db.t3.medium", template), None);
        assert_eq!(warning("db.unknown", default_pools), None);
    }
}
