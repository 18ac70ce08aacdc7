//! Where a sealed value may be opened: the scope of a SealedSecret and the binding it
//! authenticates into every ciphertext.

use std::fmt;
use std::str::FromStr;

/// How tightly a sealed value is tied to its place in the cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Namespace, name and key must all match (the default).
    #[default]
    Strict,
    /// The value may be renamed within its namespace; namespace and key must match.
    Namespace,
    /// The value may move to any namespace and name; only the key must match.
    Cluster,
}

impl Scope {
    /// The annotation that carries the scope on a SealedSecret.
    pub const ANNOTATION: &'static str = "gitseal.dev/scope";

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Strict => "strict",
            Scope::Namespace => "namespace",
            Scope::Cluster => "cluster",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scope name that is not one of `strict`, `namespace`, `cluster`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope `{0}`: expected strict, namespace or cluster")]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "strict" => Ok(Scope::Strict),
            "namespace" | "namespace-wide" => Ok(Scope::Namespace),
            "cluster" | "cluster-wide" => Ok(Scope::Cluster),
            other => Err(UnknownScope(other.to_owned())),
        }
    }
}

/// The place a value is sealed for: the scope plus the parts of (namespace, name, key)
/// that the scope binds. Two bindings are equal exactly when a value sealed for one may be
/// opened at the other.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Binding {
    scope: Scope,
    namespace: Option<String>,
    name: Option<String>,
    key: String,
}

/// Why a binding could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindingError {
    #[error("scope `{scope}` needs a namespace")]
    MissingNamespace { scope: Scope },
    #[error("scope `strict` needs a name")]
    MissingName,
    #[error("invalid namespace `{0}`: {1}")]
    InvalidNamespace(String, &'static str),
    #[error("invalid name `{0}`: {1}")]
    InvalidName(String, &'static str),
    #[error("invalid key `{0}`: {1}")]
    InvalidKey(String, &'static str),
}

impl Binding {
    /// Binds a value for `scope`. Parts the scope does not bind are dropped, so the same
    /// call works for every scope; parts it does bind must be present and valid.
    pub fn new(
        scope: Scope,
        namespace: Option<&str>,
        name: Option<&str>,
        key: &str,
    ) -> Result<Self, BindingError> {
        validate_key(key)?;
        let namespace = match scope {
            Scope::Cluster => None,
            Scope::Strict | Scope::Namespace => {
                let ns = namespace.ok_or(BindingError::MissingNamespace { scope })?;
                validate_namespace(ns)?;
                Some(ns.to_owned())
            }
        };
        let name = match scope {
            Scope::Strict => {
                let n = name.ok_or(BindingError::MissingName)?;
                validate_name(n)?;
                Some(n.to_owned())
            }
            Scope::Namespace | Scope::Cluster => None,
        };
        Ok(Binding {
            scope,
            namespace,
            name,
            key: key.to_owned(),
        })
    }

    pub fn scope(&self) -> Scope {
        self.scope
    }
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The same binding for another key of the same object.
    pub fn with_key(&self, key: &str) -> Result<Self, BindingError> {
        validate_key(key)?;
        Ok(Binding {
            key: key.to_owned(),
            ..self.clone()
        })
    }

    /// The stanza arguments that carry this binding: `scope [namespace] [name] key`.
    pub(crate) fn to_args(&self) -> Vec<String> {
        let mut args = vec![self.scope.as_str().to_owned()];
        args.extend(self.namespace.iter().cloned());
        args.extend(self.name.iter().cloned());
        args.push(self.key.clone());
        args
    }

    /// Parses the arguments written by [`Binding::to_args`].
    pub(crate) fn from_args(args: &[String]) -> Option<Self> {
        let (scope, rest) = args.split_first()?;
        let scope: Scope = scope.parse().ok()?;
        let b = match (scope, rest) {
            (Scope::Strict, [ns, name, key]) => Binding::new(scope, Some(ns), Some(name), key),
            (Scope::Namespace, [ns, key]) => Binding::new(scope, Some(ns), None, key),
            (Scope::Cluster, [key]) => Binding::new(scope, None, None, key),
            _ => return None,
        };
        b.ok()
    }
}

impl fmt::Display for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.namespace, &self.name) {
            (Some(ns), Some(name)) => write!(f, "{}/{} key {} (strict)", ns, name, self.key),
            (Some(ns), None) => write!(f, "namespace {} key {} (namespace)", ns, self.key),
            _ => write!(f, "key {} (cluster)", self.key),
        }
    }
}

/// A DNS-1123 label, as Kubernetes requires for namespaces.
pub fn validate_namespace(ns: &str) -> Result<(), BindingError> {
    dns_label(ns).map_err(|why| BindingError::InvalidNamespace(printable(ns), why))
}

/// A DNS-1123 subdomain, as Kubernetes requires for Secret names.
pub fn validate_name(name: &str) -> Result<(), BindingError> {
    if name.is_empty() || name.len() > 253 {
        return Err(BindingError::InvalidName(
            printable(name),
            "must be 1 to 253 characters",
        ));
    }
    for label in name.split('.') {
        dns_label(label).map_err(|why| BindingError::InvalidName(printable(name), why))?;
    }
    Ok(())
}

/// A Secret data key: `[-._a-zA-Z0-9]+`, at most 253 characters.
pub fn validate_key(key: &str) -> Result<(), BindingError> {
    if key.is_empty() || key.len() > 253 {
        return Err(BindingError::InvalidKey(
            printable(key),
            "must be 1 to 253 characters",
        ));
    }
    if key == "." || key == ".." {
        return Err(BindingError::InvalidKey(
            printable(key),
            "must not be `.` or `..`",
        ));
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(BindingError::InvalidKey(
            printable(key),
            "may hold only letters, digits, `-`, `_` and `.`",
        ));
    }
    Ok(())
}

fn dns_label(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > 63 {
        return Err("must be 1 to 63 characters");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("may hold only lowercase letters, digits and `-`");
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err("must start and end with a letter or digit");
    }
    Ok(())
}

/// Makes a user-supplied string safe to show on a terminal: control characters are
/// escaped and very long strings are cut.
pub fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(80).flat_map(char::escape_debug).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_drops_unbound_parts() {
        let b = Binding::new(Scope::Cluster, Some("prod"), Some("db"), "pw").unwrap();
        assert_eq!(b.to_args(), ["cluster", "pw"]);
        let b = Binding::new(Scope::Namespace, Some("prod"), Some("db"), "pw").unwrap();
        assert_eq!(b.to_args(), ["namespace", "prod", "pw"]);
        let b = Binding::new(Scope::Strict, Some("prod"), Some("db"), "pw").unwrap();
        assert_eq!(b.to_args(), ["strict", "prod", "db", "pw"]);
        assert_eq!(Binding::from_args(&b.to_args()), Some(b));
    }

    #[test]
    fn rejects_bad_parts() {
        assert_eq!(
            Binding::new(Scope::Strict, None, Some("db"), "pw"),
            Err(BindingError::MissingNamespace {
                scope: Scope::Strict
            })
        );
        assert_eq!(
            Binding::new(Scope::Strict, Some("prod"), None, "pw"),
            Err(BindingError::MissingName)
        );
        assert!(Binding::new(Scope::Strict, Some("Prod"), Some("db"), "pw").is_err());
        assert!(Binding::new(Scope::Strict, Some("prod"), Some("db_1"), "pw").is_err());
        assert!(Binding::new(Scope::Cluster, None, None, "p w").is_err());
        assert!(Binding::new(Scope::Cluster, None, None, "..").is_err());
        assert!(Binding::new(Scope::Strict, Some("p"), Some("a.b-c.d"), "k.e_y-1").is_ok());
        assert!(Binding::from_args(&["strict".into(), "x".into()]).is_none());
        assert!(Binding::from_args(&["bogus".into(), "x".into()]).is_none());
    }

    #[test]
    fn printable_escapes_controls() {
        assert_eq!(printable("a\u{1b}[31mb"), "a\\u{1b}[31mb");
        assert_eq!(printable(&"x".repeat(100)).chars().count(), 81);
    }
}
