//! XEP-0401 (0.6.0) ad-hoc commands as `mod_invites_adhoc` applies them: who may use which
//! command, whether a contact invite may promise `ibr=y`, the rules of the create-account and
//! password-reset forms, and the invitation result form (its errors: [`Error::stanza_error`]).
//!
//! The shim gathers the facts (the requester's roles on Prosody 0.12, or the answers of Prosody
//! 13's permission API; which modules run; whether a name is taken) and carries out what is
//! decided here.

use std::collections::BTreeSet;

use crate::datetime::format_datetime;
use crate::jid;
use crate::ns::INVITATION_FORM;
use crate::{Error, Result};

/// Title of the invitation result form (the stock module's wording).
pub const INVITATION_TITLE: &str = "Your invite has been created";

/// The configured policy: the stock option names and defaults, plus `invites_account_roles`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `allow_user_invites`: whether ordinary users' contact invites also allow registration.
    pub allow_user_invites: bool,
    /// `allow_contact_invites`: whether every local user, not only admins, may create contact
    /// invites.
    pub allow_contact_invites: bool,
    /// `allow_user_invites_by_roles`: roles whose users may invite new users.
    pub allow_roles: BTreeSet<String>,
    /// `deny_user_invites_by_roles`: roles whose users may not (the allow list wins).
    pub deny_roles: BTreeSet<String>,
    /// `invites_account_roles`: roles whose users may create account invites, besides admins.
    pub account_roles: BTreeSet<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            allow_user_invites: false,
            allow_contact_invites: true,
            allow_roles: BTreeSet::new(),
            deny_roles: BTreeSet::new(),
            account_roles: BTreeSet::new(),
        }
    }
}

/// Who may run a command, in `mod_adhoc`'s permission vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Any account of the host (`"local_user"`).
    LocalUsers,
    /// Admins of the host (`"admin"`).
    Admins,
}

impl Access {
    /// The permission string `mod_adhoc` understands.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LocalUsers => "local_user",
            Self::Admins => "admin",
        }
    }
}

/// What is known about the requester's rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authority {
    /// Prosody 0.12: the admin flag and the account's roles.
    Roles {
        /// Admin of this host.
        admin: bool,
        /// Role names the account has.
        roles: BTreeSet<String>,
    },
    /// Prosody 13: the permission framework's answers (`module:may`), which already fold in
    /// admins, role inheritance and the operator's permission settings.
    Permissions {
        /// `mod_invites_adhoc:invite-users`.
        invite_users: bool,
        /// `mod_invites_adhoc:create-account`.
        create_accounts: bool,
    },
}

/// The entity running a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester {
    /// Whether it is an account of this host.
    pub local: bool,
    /// Its rights.
    pub authority: Authority,
}

impl Policy {
    /// Who may run "Create new contact invite".
    pub fn contact_command_access(&self) -> Access {
        if self.allow_contact_invites { Access::LocalUsers } else { Access::Admins }
    }

    /// Whether the requester may create invites that let new people register here: admins
    /// always; else any role in the allow list grants, any role in the deny list refuses; else
    /// `allow_user_invites`.
    pub fn may_invite_new_users(&self, requester: &Requester) -> bool {
        match &requester.authority {
            Authority::Permissions { invite_users, .. } => *invite_users,
            Authority::Roles { admin: true, .. } => true,
            Authority::Roles { roles, .. } => {
                if roles.iter().any(|role| self.allow_roles.contains(role)) {
                    true
                } else if roles.iter().any(|role| self.deny_roles.contains(role)) {
                    false
                } else {
                    self.allow_user_invites
                }
            }
        }
    }

    /// Whether the requester may create account invites: admins, and users holding a role of
    /// `invites_account_roles` (empty by default).
    pub fn may_create_accounts(&self, requester: &Requester) -> bool {
        match &requester.authority {
            Authority::Permissions { create_accounts, .. } => *create_accounts,
            Authority::Roles { admin, roles } => *admin || roles.iter().any(|role| self.account_roles.contains(role)),
        }
    }

    /// A contact invite for the requester: whether it also allows registration, i.e. carries
    /// `ibr=y`. That is a promise (XEP-0401: MUST be omitted otherwise), so it needs both the
    /// right to invite new users and a registration path that works on this host now
    /// ([`crate::register::registration_possible`]).
    pub fn contact_invite(&self, requester: &Requester, registration_possible: bool) -> Result<bool> {
        if !requester.local {
            return Err(Error::NotLocalUser);
        }
        Ok(registration_possible && self.may_invite_new_users(requester))
    }
}

/// The username a create-account form asks for: `Ok(None)` when the field is absent or blank
/// (an invite for any name), the nodeprepped name when it is a valid localpart. `prepped` is
/// the shim's nodeprep of `raw`, `None` when nodeprep refused it.
pub fn requested_username<'a>(raw: Option<&str>, prepped: Option<&'a str>) -> Result<Option<&'a str>> {
    if raw.is_none_or(|raw| raw.trim().is_empty()) {
        return Ok(None);
    }
    let name = prepped.ok_or(Error::InvalidUsername)?;
    jid::check_username(name).map(Some)
}

/// Facts about a requested username that the shim looked up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NameFacts {
    /// An account by that name exists.
    pub exists: bool,
    /// A pending invite reserves it ([`crate::reservations::Reservations`]).
    pub reserved: bool,
}

/// What a submitted create-account form turns into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountPlan {
    /// The only username the invite registers (`None`: any name).
    pub username: Option<String>,
    /// Make the new account and the creator mutually subscribed on registration.
    pub subscribe: bool,
}

/// Decides a submitted create-account form. A name must be free: neither an existing account
/// nor reserved by another pending invite. Mutual subscription needs a creator on this host,
/// since the registration path subscribes local accounts to each other.
pub fn account_invite(
    username: Option<&str>,
    facts: NameFacts,
    roster_subscription: bool,
    requester_local: bool,
) -> Result<AccountPlan> {
    if username.is_some() {
        if facts.exists {
            return Err(Error::UsernameTaken);
        }
        if facts.reserved {
            return Err(Error::UsernameReserved);
        }
    }
    if roster_subscription && !requester_local {
        return Err(Error::NotLocalUser);
    }
    Ok(AccountPlan { username: username.map(str::to_owned), subscribe: roster_subscription })
}

/// The account a password-reset form names: `accountjid` (already jidprepped) must be a bare
/// or full JID of an account on `host`. Whether the account exists is the caller's lookup.
pub fn reset_account<'a>(accountjid: Option<&'a str>, host: &str) -> Result<&'a str> {
    // The texts are what the requester sees.
    let jid = accountjid.filter(|j| !j.is_empty()).ok_or_else(|| Error::BadRequest("No account given".into()))?;
    let not_account = || Error::BadRequest(format!("'{jid}' is not the address of an account"));
    let parts = jid::split(jid);
    let Some(node) = parts.node else {
        return Err(not_account());
    };
    if parts.domain != host {
        return Err(Error::UnknownAccount);
    }
    if node.is_empty() || node.len() > jid::MAX_NODE_BYTES {
        return Err(not_account());
    }
    Ok(node)
}

/// One field of a data form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormField {
    /// `var`.
    pub var: &'static str,
    /// XEP-0004 field type.
    pub kind: &'static str,
    /// `label`, for people.
    pub label: Option<&'static str>,
    /// `desc`, for people.
    pub desc: Option<&'static str>,
    /// The single value.
    pub value: String,
}

/// The fields of the invitation result form (XEP-0401 0.6.0): hidden `FORM_TYPE`
/// `urn:xmpp:invite#invitation`, `landing-url` when there is a landing page, `uri`, and
/// `expire` as an XEP-0082 date-time.
pub fn invitation_fields(uri: &str, landing_page: Option<&str>, expires: i64) -> Vec<FormField> {
    let mut fields =
        vec![FormField { var: "FORM_TYPE", kind: "hidden", label: None, desc: None, value: INVITATION_FORM.to_owned() }];
    if let Some(page) = landing_page.filter(|page| !page.is_empty()) {
        fields.push(FormField {
            var: "landing-url",
            kind: "text-single",
            label: Some("Invite web page"),
            desc: Some("Share this link"),
            value: page.to_owned(),
        });
    }
    fields.push(FormField {
        var: "uri",
        kind: "text-single",
        label: Some("Invite URI"),
        desc: Some("This alternative link can be opened with some XMPP clients"),
        value: uri.to_owned(),
    });
    fields.push(FormField {
        var: "expire",
        kind: "text-single",
        label: Some("Invite valid until"),
        desc: None,
        value: format_datetime(expires),
    });
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "example.com";

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|&n| n.to_owned()).collect()
    }

    fn user(admin: bool, roles: &[&str]) -> Requester {
        Requester { local: true, authority: Authority::Roles { admin, roles: set(roles) } }
    }

    fn permitted(invite_users: bool, create_accounts: bool) -> Requester {
        Requester { local: true, authority: Authority::Permissions { invite_users, create_accounts } }
    }

    #[test]
    fn who_may_invite_new_users() {
        let open = Policy { allow_user_invites: true, ..Policy::default() };
        let by_roles =
            Policy { allow_roles: set(&["trusted"]), deny_roles: set(&["guest", "trusted-guest"]), ..Policy::default() };
        let open_but_deny = Policy { deny_roles: set(&["guest"]), ..open.clone() };
        let cases = [
            ("default: plain user", Policy::default(), user(false, &[]), false),
            ("default: admin", Policy::default(), user(true, &[]), true),
            ("allow_user_invites", open.clone(), user(false, &[]), true),
            ("allowed role", by_roles.clone(), user(false, &["trusted"]), true),
            ("allow wins over deny", by_roles.clone(), user(false, &["trusted", "guest"]), true),
            ("denied role", open_but_deny.clone(), user(false, &["guest"]), false),
            ("unlisted role falls back", open_but_deny, user(false, &["other"]), true),
            ("unlisted role, default", by_roles, user(false, &["other"]), false),
            ("admin despite a denied role", Policy { deny_roles: set(&["guest"]), ..open }, user(true, &["guest"]), true),
            ("13: granted", Policy::default(), permitted(true, false), true),
            (
                "13: not granted, options ignored",
                Policy { allow_user_invites: true, ..Policy::default() },
                permitted(false, true),
                false,
            ),
        ];
        for (name, policy, requester, expected) in cases {
            assert_eq!(policy.may_invite_new_users(&requester), expected, "{name}");
        }
    }

    #[test]
    fn who_may_create_account_invites() {
        let roles = Policy { account_roles: set(&["inviter"]), ..Policy::default() };
        let cases = [
            ("admin", Policy::default(), user(true, &[]), true),
            ("plain user", Policy::default(), user(false, &["inviter"]), false),
            (
                "allow_user_invites is not enough",
                Policy { allow_user_invites: true, ..Policy::default() },
                user(false, &[]),
                false,
            ),
            ("granted role", roles.clone(), user(false, &["inviter"]), true),
            ("other role", roles, user(false, &["member"]), false),
            ("13: granted", Policy::default(), permitted(false, true), true),
            ("13: not granted", Policy::default(), permitted(true, false), false),
        ];
        for (name, policy, requester, expected) in cases {
            assert_eq!(policy.may_create_accounts(&requester), expected, "{name}");
        }
    }

    #[test]
    fn ibr_is_a_promise() {
        let open = Policy { allow_user_invites: true, ..Policy::default() };
        let cases = [
            ("may invite, can register", open.clone(), user(false, &[]), true, Ok(true)),
            ("may invite, cannot register", open.clone(), user(false, &[]), false, Ok(false)),
            ("admin, cannot register", Policy::default(), user(true, &[]), false, Ok(false)),
            ("may not invite, can register", Policy::default(), user(false, &[]), true, Ok(false)),
            ("13: granted", Policy::default(), permitted(true, false), true, Ok(true)),
            (
                "remote user",
                open,
                Requester { local: false, authority: Authority::Roles { admin: true, roles: BTreeSet::new() } },
                true,
                Err(Error::NotLocalUser),
            ),
        ];
        for (name, policy, requester, possible, expected) in cases {
            assert_eq!(policy.contact_invite(&requester, possible), expected, "{name}");
        }
    }

    #[test]
    fn contact_command_access() {
        assert_eq!(Policy::default().contact_command_access().as_str(), "local_user");
        let admins_only = Policy { allow_contact_invites: false, ..Policy::default() };
        assert_eq!(admins_only.contact_command_access().as_str(), "admin");
    }

    #[test]
    fn requested_usernames() {
        let long = "a".repeat(jid::MAX_NODE_BYTES + 1);
        type Case<'a> = (Option<&'a str>, Option<&'a str>, Result<Option<&'a str>>);
        let cases: [Case<'_>; 9] = [
            (None, None, Ok(None)),
            (Some(""), None, Ok(None)),
            (Some("  "), None, Ok(None)),
            (Some("Bob"), Some("bob"), Ok(Some("bob"))),
            (Some("a@b"), None, Err(Error::InvalidUsername)),
            (Some("x"), Some(""), Err(Error::InvalidUsername)),
            (Some("x"), Some("a b"), Err(Error::InvalidUsername)),
            (Some("x"), Some("a\u{7}"), Err(Error::InvalidUsername)),
            (Some("x"), Some(&long), Err(Error::InvalidUsername)),
        ];
        for (raw, prepped, expected) in cases {
            assert_eq!(requested_username(raw, prepped), expected, "{raw:?} {prepped:?}");
        }
    }

    #[test]
    fn account_forms() {
        let free = NameFacts::default();
        let taken = NameFacts { exists: true, reserved: false };
        let reserved = NameFacts { exists: false, reserved: true };
        let plan = |username: Option<&str>, subscribe| Ok(AccountPlan { username: username.map(str::to_owned), subscribe });
        let cases = [
            ("any name", None, free, false, true, plan(None, false)),
            ("free name", Some("bob"), free, false, true, plan(Some("bob"), false)),
            ("with subscription", Some("bob"), free, true, true, plan(Some("bob"), true)),
            ("any name with subscription", None, free, true, true, plan(None, true)),
            ("taken", Some("bob"), taken, false, true, Err(Error::UsernameTaken)),
            ("reserved", Some("bob"), reserved, false, true, Err(Error::UsernameReserved)),
            ("facts about no name are ignored", None, taken, false, true, plan(None, false)),
            ("remote creator cannot be subscribed", None, free, true, false, Err(Error::NotLocalUser)),
            ("remote creator without subscription", None, free, false, false, plan(None, false)),
        ];
        for (name, username, facts, subscribe, local, expected) in cases {
            assert_eq!(account_invite(username, facts, subscribe, local), expected, "{name}");
        }
    }

    #[test]
    fn reset_accounts() {
        let not_account = |jid: &str| Err(Error::BadRequest(format!("'{jid}' is not the address of an account")));
        let cases = [
            (Some("carol@example.com"), Ok("carol")),
            (Some("carol@example.com/phone"), Ok("carol")),
            (Some("carol@elsewhere.org"), Err(Error::UnknownAccount)),
            (Some("example.com"), not_account("example.com")),
            (Some("@example.com"), not_account("@example.com")),
            (Some(""), Err(Error::BadRequest("No account given".into()))),
            (None, Err(Error::BadRequest("No account given".into()))),
        ];
        for (jid, expected) in cases {
            assert_eq!(reset_account(jid, HOST), expected, "{jid:?}");
        }
    }

    #[test]
    fn result_form_fields() {
        let fields =
            invitation_fields("xmpp:example.com?register;preauth=T", Some("https://example.com/invite/T"), 1_795_320_910);
        let vars: Vec<_> = fields.iter().map(|f| (f.var, f.kind, f.value.as_str())).collect();
        assert_eq!(
            vars,
            vec![
                ("FORM_TYPE", "hidden", "urn:xmpp:invite#invitation"),
                ("landing-url", "text-single", "https://example.com/invite/T"),
                ("uri", "text-single", "xmpp:example.com?register;preauth=T"),
                ("expire", "text-single", "2026-11-22T04:15:10Z"),
            ]
        );
        for page in [None, Some("")] {
            let vars: Vec<_> = invitation_fields("xmpp:x", page, 0).iter().map(|f| f.var).collect();
            assert_eq!(vars, vec!["FORM_TYPE", "uri", "expire"], "{page:?}");
        }
    }
}
