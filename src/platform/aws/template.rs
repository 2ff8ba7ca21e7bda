//! The reference shop's CloudFormation template (reference-app/aws/shop.yaml,
//! built into the binary) and the parameters a stack is created with: the
//! scenario's `target.parameters`, and its secrets from the environment,
//! never from the file.

use std::collections::BTreeMap;

use serde_yaml_ng::Value;

use crate::platform;

/// The template `gameday up` and `run` create the stack from.
pub const SHOP_TEMPLATE: &str = include_str!("../../../reference-app/aws/shop.yaml");

/// The template parameter that carries the shop's admin token.
pub const ADMIN_TOKEN_PARAMETER: &str = "AdminToken";

/// One parameter the template declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub name: String,
    pub has_default: bool,
    /// NoEcho: a secret.
    pub secret: bool,
    pub description: String,
}

/// The parameters a template declares, in its order.
pub fn declared(template: &str) -> platform::Result<Vec<Declared>> {
    let doc: Value = serde_yaml_ng::from_str(template).map_err(|e| {
        platform::Error::refused(
            "the shop's CloudFormation template",
            format!("is not YAML: {e}"),
        )
    })?;
    let Some(parameters) = doc.get("Parameters").and_then(Value::as_mapping) else {
        return Ok(Vec::new());
    };
    Ok(parameters
        .iter()
        .filter_map(|(name, spec)| {
            Some(Declared {
                name: name.as_str()?.to_string(),
                has_default: spec.get("Default").is_some(),
                secret: spec.get("NoEcho").and_then(Value::as_bool) == Some(true),
                description: spec
                    .get("Description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            })
        })
        .collect())
}

/// The stack's parameters: the scenario's `given` ones, checked against
/// what the template declares, and the admin token from the environment
/// (`admin_token`). A secret written in the scenario is refused, and so is
/// a parameter the template does not have or a required one left out.
pub fn parameters(
    template: &str,
    given: &BTreeMap<String, String>,
    admin_token: Option<&str>,
) -> platform::Result<Vec<(String, String)>> {
    let declared = declared(template)?;
    let refuse = |key: &str, reason: String| {
        platform::Error::refused(format!("target.parameters.{key}"), reason)
    };
    for key in given.keys() {
        match declared.iter().find(|d| &d.name == key) {
            None => {
                let names: Vec<&str> = declared.iter().map(|d| d.name.as_str()).collect();
                return Err(refuse(
                    key,
                    format!(
                        "the shop's template has no such parameter (it has {})",
                        names.join(", ")
                    ),
                ));
            }
            Some(d) if d.secret => {
                return Err(refuse(
                    key,
                    format!(
                        "is a secret: it is taken from the environment ({}), never from the \
                         scenario file",
                        crate::platform::ADMIN_TOKEN_ENV
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    let mut out: Vec<(String, String)> =
        given.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for d in &declared {
        if d.name == ADMIN_TOKEN_PARAMETER {
            let token = admin_token.filter(|t| !t.is_empty()).ok_or_else(|| {
                platform::Error::refused(
                    "the stack's AdminToken",
                    format!(
                        "set {} to the shop's admin token (16 to 128 characters of A-Z a-z 0-9 . _ ~ -); \
                         gameday passes it to the stack and uses it for the order audit",
                        crate::platform::ADMIN_TOKEN_ENV
                    ),
                )
            })?;
            out.push((d.name.clone(), token.to_string()));
        } else if !d.has_default && !given.contains_key(&d.name) {
            return Err(refuse(
                &d.name,
                format!("has no default: set it in the scenario ({})", d.description),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const RELEASE: [(&str, &str); 5] = [
        ("ReleaseBucket", "gameday-123456789012-us-east-1-shop"),
        ("ReleaseKey", "releases/gameday-shop-00.tar.gz"),
        ("ReleaseArtifactSha256", "00"),
        ("AllowedIngressCidr", "198.51.100.7/32"),
        ("AdminIngressCidr", "198.51.100.7/32"),
    ];

    #[test]
    fn the_built_in_template_declares_the_release_and_a_secret_admin_token() {
        let d = declared(SHOP_TEMPLATE).unwrap();
        let admin = d.iter().find(|p| p.name == ADMIN_TOKEN_PARAMETER).unwrap();
        assert!(admin.secret && !admin.has_default);
        for release in ["ReleaseBucket", "ReleaseKey", "ReleaseArtifactSha256"] {
            let p = d.iter().find(|p| p.name == release).unwrap();
            assert!(!p.has_default && !p.secret, "{release}");
        }
        assert!(d.iter().any(|p| p.name == "InstanceType" && p.has_default));
        for open in ["AllowedIngressCidr", "AdminIngressCidr"] {
            let p = d.iter().find(|p| p.name == open).unwrap();
            assert!(!p.has_default, "{open} is not open to the world by default");
        }
    }

    #[test]
    fn the_admin_token_comes_from_the_environment_and_the_rest_from_the_scenario() {
        let p = parameters(SHOP_TEMPLATE, &given(&RELEASE), Some("a-token-of-16-chars")).unwrap();
        assert!(p.contains(&("AdminToken".into(), "a-token-of-16-chars".into())));
        assert!(p.contains(&("ReleaseArtifactSha256".into(), "00".into())));
        let e = parameters(SHOP_TEMPLATE, &given(&RELEASE), None).unwrap_err();
        assert!(e.to_string().contains("set GAMEDAY_ADMIN_TOKEN"), "{e}");
    }

    #[test]
    fn a_secret_in_the_file_an_unknown_parameter_and_a_missing_required_one_are_refused() {
        let mut secret = given(&RELEASE);
        secret.insert("AdminToken".into(), "written-in-the-file".into());
        let e = parameters(SHOP_TEMPLATE, &secret, Some("t")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("target.parameters.AdminToken: is a secret: it is taken from the environment (GAMEDAY_ADMIN_TOKEN)"),
            "{e}"
        );
        let mut unknown = given(&RELEASE);
        unknown.insert("InstanceCount".into(), "3".into());
        let e = parameters(SHOP_TEMPLATE, &unknown, Some("t")).unwrap_err();
        assert!(e.to_string().contains("no such parameter"), "{e}");
        let e = parameters(SHOP_TEMPLATE, &given(&RELEASE[..1]), Some("t")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("target.parameters.ReleaseKey: has no default"),
            "{e}"
        );
    }
}
