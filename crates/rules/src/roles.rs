//! Roles an invite grants (`additional_data.roles`): read in either shape any release wrote,
//! stored in the shape the running release's stock modules read.

/// One entry of an invite's `additional_data.roles`, which comes as a map (`{role = true}`, what
/// the stock command line writes) or as an array (`{"role"}`, what later versions write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleEntry {
    /// `roles[i] = "name"`.
    Listed(String),
    /// `roles.name = flag`.
    Keyed(String, bool),
}

/// The role names to grant, without duplicates: listed entries in their order (Prosody 13 takes
/// the first as the primary role), then keyed ones sorted by name.
pub fn role_names(entries: impl IntoIterator<Item = RoleEntry>) -> Vec<String> {
    let mut listed = Vec::new();
    let mut keyed = Vec::new();
    for entry in entries {
        match entry {
            RoleEntry::Listed(name) => listed.push(name),
            RoleEntry::Keyed(name, true) => keyed.push(name),
            RoleEntry::Keyed(_, false) => {}
        }
    }
    keyed.sort();
    let mut names: Vec<String> = Vec::with_capacity(listed.len() + keyed.len());
    for name in listed.into_iter().chain(keyed) {
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The shape a release's stock `mod_invites_register` reads `additional_data.roles` in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleShape {
    /// `{ [role] = true }`: Prosody 0.12.
    Set,
    /// `{ role, ... }`, the first the primary role: Prosody 13 and later.
    List,
}

impl RoleShape {
    /// The shape for Prosody `version` (`prosody.version`, e.g. "0.12.3" or "13.0.1"); a version
    /// that cannot be read is a current one.
    pub fn of_release(version: &str) -> Self {
        let major = version.split('.').next().and_then(|major| major.parse::<u32>().ok());
        if major.is_some_and(|major| major < 13) { Self::Set } else { Self::List }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn roles_as_map_or_array() {
        let cases = [
            (vec![RoleEntry::Keyed("prosody:admin".into(), true)], vec!["prosody:admin"]),
            (vec![RoleEntry::Listed("prosody:admin".into()), RoleEntry::Listed("b".into())], vec!["prosody:admin", "b"]),
            (vec![RoleEntry::Keyed("z".into(), true), RoleEntry::Keyed("a".into(), true)], vec!["a", "z"]),
            (vec![RoleEntry::Keyed("off".into(), false), RoleEntry::Keyed("on".into(), true)], vec!["on"]),
            (
                vec![RoleEntry::Listed("x".into()), RoleEntry::Keyed("x".into(), true), RoleEntry::Listed(String::new())],
                vec!["x"],
            ),
            (vec![], vec![]),
        ];
        for (entries, expected) in cases {
            assert_eq!(role_names(entries.clone()), expected, "{entries:?}");
        }
    }

    #[test]
    fn releases_before_13_read_a_set() {
        assert_eq!(RoleShape::of_release("0.12.3"), RoleShape::Set);
        assert_eq!(RoleShape::of_release("13.0.1"), RoleShape::List);
        assert_eq!(RoleShape::of_release("trunk"), RoleShape::List);
        assert_eq!(RoleShape::of_release(""), RoleShape::List);
    }
}
