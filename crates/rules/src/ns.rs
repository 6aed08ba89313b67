//! XML namespaces and identifiers of the protocols the invite modules speak.

/// XEP-0379: the `preauth` element, in pre-auth IQs and in `subscribe` presences.
pub const PARS: &str = "urn:xmpp:pars:0";
/// XEP-0445: stream feature announcing token-based in-band registration.
pub const IBR_TOKEN: &str = "urn:xmpp:ibr-token:0";
/// XEP-0401 0.3.0 (legacy): stream feature still checked by Conversations and Siskin.
pub const INVITE: &str = "urn:xmpp:invite";
/// XEP-0401: ad-hoc node "Create new contact invite".
pub const INVITE_COMMAND_CONTACT: &str = "urn:xmpp:invite#invite";
/// XEP-0401: ad-hoc node "Create new account invite".
pub const INVITE_COMMAND_ACCOUNT: &str = "urn:xmpp:invite#create-account";
/// Ad-hoc node "Create password reset invite" (our extension, same family).
pub const INVITE_COMMAND_RESET: &str = "urn:xmpp:invite#create-reset";
/// Prosody 13's node for the same command, answered too.
pub const PROSODY_RESET_COMMAND: &str = "xmpp:prosody.im/mod_invites_adhoc#password-reset";
/// This project's own ad-hoc nodes (not XSF-registered: an informal `urn:x-` name).
pub const LIFECYCLE_COMMANDS: &str = "urn:x-prosody-invites:commands";
/// Ad-hoc node "List invites" (admins).
pub const LIST_COMMAND: &str = "urn:x-prosody-invites:commands#list";
/// Ad-hoc node "Revoke invite" (admins).
pub const REVOKE_COMMAND: &str = "urn:x-prosody-invites:commands#revoke";
/// Ad-hoc node "My invites" (every local user).
pub const MINE_COMMAND: &str = "urn:x-prosody-invites:commands#mine";
/// Ad-hoc node "Invite someone to group chats" (every local user).
pub const ROOMS_COMMAND: &str = "urn:x-prosody-invites:commands#rooms";
/// Field var of "Group chats to join" on the create-account form (our extension of XEP-0401).
pub const ROOMS_FIELD: &str = "urn:x-prosody-invites:rooms";
/// XEP-0402: PEP native bookmarks.
pub const BOOKMARKS: &str = "urn:xmpp:bookmarks:1";
/// XEP-0060: publish-subscribe.
pub const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
/// XEP-0401 0.6.0: FORM_TYPE of the invitation result form.
pub const INVITATION_FORM: &str = "urn:xmpp:invite#invitation";
/// XEP-0077: in-band registration.
pub const REGISTER: &str = "jabber:iq:register";
/// XEP-0004: data forms.
pub const DATA_FORMS: &str = "jabber:x:data";
/// XEP-0050: ad-hoc commands.
pub const COMMANDS: &str = "http://jabber.org/protocol/commands";
/// XEP-0249: direct MUC invitations.
pub const CONFERENCE: &str = "jabber:x:conference";
/// RFC 6120: stanza error conditions.
pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// Every namespace above, by the short name the Lua shims use (`core.ns.pars`).
pub const ALL: &[(&str, &str)] = &[
    ("pars", PARS),
    ("ibr_token", IBR_TOKEN),
    ("invite", INVITE),
    ("invite_command_contact", INVITE_COMMAND_CONTACT),
    ("invite_command_account", INVITE_COMMAND_ACCOUNT),
    ("invite_command_reset", INVITE_COMMAND_RESET),
    ("prosody_reset_command", PROSODY_RESET_COMMAND),
    ("lifecycle_commands", LIFECYCLE_COMMANDS),
    ("list_command", LIST_COMMAND),
    ("revoke_command", REVOKE_COMMAND),
    ("mine_command", MINE_COMMAND),
    ("rooms_command", ROOMS_COMMAND),
    ("rooms_field", ROOMS_FIELD),
    ("bookmarks", BOOKMARKS),
    ("pubsub", PUBSUB),
    ("invitation_form", INVITATION_FORM),
    ("register", REGISTER),
    ("data_forms", DATA_FORMS),
    ("commands", COMMANDS),
    ("conference", CONFERENCE),
    ("stanzas", STANZAS),
];
