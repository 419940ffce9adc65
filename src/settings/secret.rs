//! Secrets: a literal, `env:NAME`, `file:PATH` or `cred:NAME` (systemd credentials), read once at start;
//! `Debug` and `Display` print `***`.

use std::fmt;
use std::sync::Arc;

/// A credential. The only way to see its value is [`Secret::expose`], used where it goes on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

thread_local! {
    /// Set while a configuration is read for a command that needs no secret (`deadletters`).
    static UNRESOLVED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `read` with secrets left unresolved: `env:` and `file:` are not looked at (an admin shell has neither
/// the service's environment nor its credentials), and every secret is a placeholder never to be sent.
pub fn without_secrets<R>(read: impl FnOnce() -> R) -> R {
    UNRESOLVED.with(|flag| flag.set(true));
    let result = read();
    UNRESOLVED.with(|flag| flag.set(false));
    result
}

impl Secret {
    /// Resolves a secret specification: `env:NAME`, `file:PATH`, or the literal value.
    pub fn resolve(spec: &str) -> Result<Self, String> {
        // `ENV:NAME` or `File:/path` is a typo, not a password: taken literally it would be sent as one.
        if let Some((prefix, _)) = spec.split_once(':')
            && ["env", "file", "cred"].iter().any(|known| prefix.eq_ignore_ascii_case(known) && prefix != *known)
        {
            return Err(format!(
                "`{prefix}:` is not a secret source; write `{}:` in lower case",
                prefix.to_ascii_lowercase()
            ));
        }
        // ` env:X` would be taken as a literal password, `tok ` sent with its space: neither is meant.
        if spec.trim() != spec {
            return Err("it has spaces or line breaks around it: write it without them".to_owned());
        }
        if UNRESOLVED.with(std::cell::Cell::get) {
            return Ok(Self("unresolved".into()));
        }
        let value = if let Some(name) = spec.strip_prefix("env:") {
            std::env::var(name).map_err(|e| match e {
                std::env::VarError::NotPresent => format!("environment variable `{name}` is not set"),
                std::env::VarError::NotUnicode(_) => format!("environment variable `{name}` is not UTF-8"),
            })?
        } else if let Some(path) = spec.strip_prefix("file:") {
            let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read secret file `{path}`: {e}"))?;
            text.trim_end_matches(['\r', '\n']).to_owned()
        } else if let Some(name) = spec.strip_prefix("cred:") {
            // systemd's credentials (`LoadCredential=`, `LoadCredentialEncrypted=`): files in the directory the
            // service manager names, readable by the service whatever its (dynamic) user.
            let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
                format!("`cred:{name}` needs $CREDENTIALS_DIRECTORY (set by systemd for a unit with LoadCredential=)")
            })?;
            if name.is_empty() || name.contains('/') {
                return Err(format!("`cred:{name}` must name one credential"));
            }
            let path = std::path::Path::new(&dir).join(name);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read credential `{name}` ({}): {e}", path.display()))?;
            text.trim_end_matches(['\r', '\n']).to_owned()
        } else {
            spec.to_owned()
        };
        if value.is_empty() {
            return Err("the secret is empty".to_owned());
        }
        Ok(Self(value.into()))
    }

    /// The secret's value, for the wire only: never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_env_and_file_secrets_resolve() {
        assert_eq!(Secret::resolve("abc").unwrap().expose(), "abc");
        // PATH is set in every test environment.
        let path = std::env::var("PATH").unwrap();
        assert_eq!(Secret::resolve("env:PATH").unwrap().expose(), path);
        let file = std::env::temp_dir().join(format!("chatbridge-secret-{}", std::process::id()));
        std::fs::write(&file, "s3cret\n").unwrap();
        assert_eq!(Secret::resolve(&format!("file:{}", file.display())).unwrap().expose(), "s3cret");
        std::fs::remove_file(file).unwrap();
    }

    #[test]
    fn credentials_come_from_the_service_managers_directory() {
        let dir = std::env::temp_dir().join(format!("chatbridge-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("yunhu"), "cred-value\n").unwrap();
        // SAFETY: this test is the only one that touches CREDENTIALS_DIRECTORY.
        unsafe { std::env::set_var("CREDENTIALS_DIRECTORY", &dir) };
        assert_eq!(Secret::resolve("cred:yunhu").unwrap().expose(), "cred-value");
        assert!(Secret::resolve("cred:missing").unwrap_err().contains("cannot read credential `missing`"));
        assert!(Secret::resolve("cred:../etc/passwd").is_err());
        assert!(Secret::resolve("ENV:X").unwrap_err().contains("lower case"));
        unsafe { std::env::remove_var("CREDENTIALS_DIRECTORY") };
        assert!(Secret::resolve("cred:yunhu").unwrap_err().contains("CREDENTIALS_DIRECTORY"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn unreadable_secrets_say_why() {
        let err = Secret::resolve("env:CHATBRIDGE_SURELY_UNSET_VARIABLE").unwrap_err();
        assert!(err.contains("CHATBRIDGE_SURELY_UNSET_VARIABLE"), "{err}");
        let err = Secret::resolve("file:/nonexistent/chatbridge/secret").unwrap_err();
        assert!(err.contains("/nonexistent/chatbridge/secret"), "{err}");
        assert!(Secret::resolve("").is_err());
    }

    #[test]
    fn debug_and_display_mask_the_value() {
        let secret = Secret::resolve("hunter2").unwrap();
        assert_eq!(format!("{secret:?} {secret}"), "*** ***");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            key: Secret,
        }
        assert!(!format!("{:?}", Holder { key: secret }).contains("hunter2"));
    }
}
