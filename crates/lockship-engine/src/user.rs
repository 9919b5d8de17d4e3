//! The user the image runs as: non-root by default, with the passwd/group entries and home
//! directory that tools expecting a real account (pip, ssh, getpass) need.

use crate::error::Error;
use lockship_oci::tar_tree::TarTree;
use lockship_python::probe::BaseFacts;

/// uid/gid of the default user, the same as distroless' and ko's `nonroot`.
pub const NONROOT_ID: u32 = 65532;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    /// Whether lockship adds the account (false when the base already has it, or for root).
    pub create: bool,
}

impl User {
    /// The config's `User`: numeric, so that runtimes can check "runAsNonRoot" without a passwd.
    pub fn config_value(&self) -> String {
        format!("{}:{}", self.uid, self.gid)
    }
}

fn lookup(passwd: &str, pred: impl Fn(&[&str]) -> bool) -> Option<User> {
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 || !pred(&f) {
            return None;
        }
        Some(User {
            name: f[0].to_string(),
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5].to_string(),
            create: false,
        })
    })
}

/// Resolves `user` from the config (`name`, `uid` or `uid:gid`; default `nonroot`) against the
/// base's /etc/passwd.
pub fn resolve(spec: Option<&str>, facts: &BaseFacts) -> Result<User, Error> {
    let spec = spec.unwrap_or("nonroot").trim();
    let passwd = facts.passwd.as_deref().unwrap_or("");
    let bad = || {
        Error::Usage(format!(
            "[tool.lockship] user = \"{spec}\": expected a name, a uid, or uid:gid"
        ))
    };
    if spec.is_empty() || spec.contains(char::is_whitespace) {
        return Err(bad());
    }
    let first = spec.split(':').next().unwrap_or(spec);
    if let Ok(uid) = first.parse::<u32>() {
        let gid = match spec.split_once(':') {
            Some((_, g)) => g.parse::<u32>().map_err(|_| bad())?,
            None => uid,
        };
        if let Some(existing) = lookup(passwd, |f| f[2] == uid.to_string()) {
            return Ok(User { gid, ..existing });
        }
        return Ok(User {
            name: "app".into(),
            uid,
            gid,
            home: "/home/app".into(),
            create: uid != 0,
        });
    }
    if let Some(existing) = lookup(passwd, |f| f[0] == spec) {
        return Ok(existing);
    }
    if spec == "root" {
        return Ok(User {
            name: "root".into(),
            uid: 0,
            gid: 0,
            home: "/root".into(),
            create: false,
        });
    }
    Ok(User {
        name: spec.to_string(),
        uid: NONROOT_ID,
        gid: NONROOT_ID,
        home: format!("/home/{spec}"),
        create: true,
    })
}

/// Writes /etc/passwd and /etc/group (the base's, plus the user) and the home directory.
pub fn add_to_tree(user: &User, facts: &BaseFacts, tree: &mut TarTree) {
    if !user.create {
        return;
    }
    let mut passwd = facts
        .passwd
        .clone()
        .unwrap_or_else(|| "root:x:0:0:root:/root:/sbin/nologin\n".into());
    if !passwd.ends_with('\n') {
        passwd.push('\n');
    }
    passwd.push_str(&format!(
        "{}:x:{}:{}:{}:{}:/sbin/nologin\n",
        user.name, user.uid, user.gid, user.name, user.home
    ));
    let mut group = facts.group.clone().unwrap_or_else(|| "root:x:0:\n".into());
    if !group.ends_with('\n') {
        group.push('\n');
    }
    if !group
        .lines()
        .any(|l| l.split(':').nth(2) == Some(&user.gid.to_string()))
    {
        group.push_str(&format!("{}:x:{}:\n", user.name, user.gid));
    }
    tree.bytes("etc/passwd", passwd, 0o644);
    tree.bytes("etc/group", group, 0o644);
    tree.dir(&user.home, 0o755, user.uid.into(), user.gid.into());
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockship_python::target::Libc;

    fn facts() -> BaseFacts {
        BaseFacts {
            python_version: (3, 11, 2),
            interpreter: "/usr/bin/python3.11".into(),
            libc: Libc::Glibc { major: 2, minor: 36 },
            passwd: Some("root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n".into()),
            group: Some("root:x:0:\n".into()),
            libraries: None,
        }
    }

    #[test]
    fn default_is_a_new_nonroot_user() {
        let u = resolve(None, &facts()).unwrap();
        assert_eq!((u.name.as_str(), u.uid, u.create), ("nonroot", 65532, true));
        assert_eq!(u.config_value(), "65532:65532");
        let mut tree = TarTree::new();
        add_to_tree(&u, &facts(), &mut tree);
        let paths: Vec<_> = tree.paths().collect();
        assert!(paths.contains(&"etc/passwd") && paths.contains(&"home/nonroot"));
    }

    #[test]
    fn existing_and_numeric_users() {
        let u = resolve(Some("nobody"), &facts()).unwrap();
        assert_eq!((u.uid, u.create), (65534, false));
        let u = resolve(Some("1000:100"), &facts()).unwrap();
        assert_eq!((u.uid, u.gid, u.create), (1000, 100, true));
        assert!(resolve(Some("a b"), &facts()).is_err());
        assert!(!resolve(Some("root"), &facts()).unwrap().create);
    }
}
