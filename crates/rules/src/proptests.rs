//! Property-based tests of the parsers and builders: round trips, and never a panic whatever the
//! input. Each property runs [`CASES`] generated cases.
#![cfg(test)]

use proptest::prelude::*;

use crate::generate::{self, GenerateCommand, GenerateMode};
use crate::record::{Field, InviteFacts};
use crate::shell::{self, SHELL_COMMANDS};
use crate::{adhoc, datetime, jid, period, token, uri};

const CASES: u32 = 2_000;

fn config() -> ProptestConfig {
    ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() }
}

/// Any text, weighted towards the characters the parsers care about.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,40}",
        "[-@/?;=&%#:.~_ a-zA-Z0-9\\x00\u{e9}\u{1F600}]{0,40}",
        "(xmpp:)?[a-z@./]{0,12}(\\?[a-z;=%0-9A-F]{0,20})?",
    ]
}

const LAST: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
const FIRST: i64 = -62_167_219_200; // 0000-01-01T00:00:00Z

proptest! {
    #![proptest_config(config())]

    // ------------------------------------------------------------------ URIs

    #[test]
    fn uri_parse_never_panics(s in text()) {
        let _ = uri::parse(&s);
    }

    #[test]
    fn uri_round_trips(
        node in proptest::option::of("[^@/]{1,12}"),
        domain in "[^@/]{1,12}",
        resource in proptest::option::of("\\PC{1,8}"),
        action in "\\PC{1,10}",
        params in proptest::collection::vec(("\\PC{1,8}", "\\PC{0,12}"), 0..4),
    ) {
        let mut jid = String::new();
        if let Some(node) = &node {
            jid.push_str(node);
            jid.push('@');
        }
        jid.push_str(&domain);
        if let Some(resource) = &resource {
            jid.push('/');
            jid.push_str(resource);
        }
        let built = uri::XmppUri { jid, action, params };
        let text = built.to_string();
        prop_assert!(text.starts_with("xmpp:"));
        prop_assert!(!text.bytes().any(|b| b <= b' ' || b >= 0x7f || b"\"<>\\^`{|}#".contains(&b)), "{text}");
        prop_assert_eq!(uri::parse(&text).map_err(|e| e.to_string()), Ok(built));
    }

    #[test]
    fn invite_uris_carry_their_token(
        node in proptest::option::of("[a-z0-9._-]{1,10}"),
        host in "[a-z0-9-]{1,10}(\\.[a-z]{2,5})?",
        bytes in any::<[u8; token::TOKEN_BYTES]>(),
        roster in any::<bool>(),
        ibr in any::<bool>(),
    ) {
        let token = token::encode_token(&bytes);
        let jid = node.map_or_else(|| host.clone(), |node| format!("{node}@{host}"));
        let action = if roster { "roster" } else { "register" };
        let text = uri::invite_uri(&jid, action, &token, ibr);
        let parsed = uri::parse(&text).map_err(|e| e.to_string());
        prop_assert!(parsed.is_ok(), "{text}");
        let parsed = parsed.unwrap_or_else(|_| unreachable!());
        prop_assert_eq!(&parsed.jid, &jid);
        prop_assert_eq!(parsed.action.as_str(), action);
        prop_assert_eq!(parsed.param("preauth"), Some(token.as_str()));
        prop_assert_eq!(parsed.param("ibr"), ibr.then_some("y"));
    }

    // ------------------------------------------------------------------ tokens

    #[test]
    fn new_tokens_are_valid_and_decode_to_their_bytes(bytes in any::<[u8; token::TOKEN_BYTES]>()) {
        let t = token::encode_token(&bytes);
        prop_assert_eq!(t.len(), 24);
        prop_assert!(token::check_token(&t).is_ok());
        prop_assert_eq!(token::new_token(&bytes).is_none(), t.starts_with('-'));
        prop_assert_eq!(base64url_decode(&t), bytes.to_vec());
        let shown = token::redact(&t);
        prop_assert!(t.starts_with(shown.trim_end_matches('…')));
        prop_assert!(!shown.contains(&t[..7]), "more than six characters shown");
    }

    #[test]
    fn check_token_accepts_exactly_the_plausible(s in text()) {
        let plausible = !s.is_empty()
            && s.len() <= token::MAX_TOKEN_LEN
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b));
        prop_assert_eq!(token::check_token(&s).is_ok(), plausible);
        let shown = token::redact(&s);
        prop_assert!(shown.chars().count() <= token::SHOWN_CHARS + 1);
    }

    // ------------------------------------------------------------------ periods

    #[test]
    fn period_parsers_never_panic(s in text()) {
        let strict = period::parse_period(&s);
        let option = period::option_period(&s);
        // What the strict parser accepts, the option reader reads the same way.
        if let Ok(seconds) = strict {
            prop_assert_eq!(option.map(|p| (p.seconds, p.ambiguous)), Ok((seconds, false)));
        }
    }

    #[test]
    fn periods_round_trip(
        count in 1u64..=1_000_000,
        unit in prop::sample::select(vec![
            ("", 1u64), ("s", 1), ("seconds", 1), ("min", 60), ("minutes", 60), ("h", 3600), ("hours", 3600),
            ("d", 86_400), ("days", 86_400), ("w", 604_800), ("weeks", 604_800), ("mon", 2_678_400),
            ("months", 2_678_400), ("y", 31_556_952), ("years", 31_556_952),
        ]),
        space in " {0,2}",
        pad in "[ \t]{0,2}",
        upper in any::<bool>(),
    ) {
        let (name, scale) = unit;
        let name = if upper { name.to_ascii_uppercase() } else { name.to_owned() };
        let text = format!("{pad}{count}{}{name}{pad}", if name.is_empty() { "" } else { space.as_str() });
        prop_assert_eq!(period::parse_period(&text).map_err(|e| e.to_string()), Ok(count * scale), "{:?}", text);
        prop_assert_eq!(period::option_period(&text).map(|p| p.seconds).map_err(|e| e.to_string()), Ok(count * scale));
    }

    #[test]
    fn periods_from_numbers(n in any::<f64>()) {
        match period::period_from_number(n) {
            Ok(seconds) => {
                prop_assert!(n.is_finite() && n >= 1.0);
                prop_assert_eq!(seconds as f64, n.floor());
            }
            Err(_) => prop_assert!(!n.is_finite() || !(1.0..9_223_372_036_854_775_808.0).contains(&n)),
        }
    }

    // ------------------------------------------------------------------ XEP-0082 times

    #[test]
    fn datetimes_round_trip(t in FIRST..=LAST) {
        let text = datetime::format_datetime(t);
        prop_assert_eq!(text.len(), 20);
        prop_assert_eq!(datetime::parse_datetime(&text).map_err(|e| e.to_string()), Ok(t));
    }

    #[test]
    fn datetime_parser_never_panics(s in prop_oneof![
        text(),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,12})?(Z|[+-][0-9]{2}:[0-9]{2})",
    ]) {
        if let Ok(t) = datetime::parse_datetime(&s) {
            // Whatever it accepts is a time it can write back and read again.
            let again = datetime::format_datetime(t);
            prop_assert_eq!(datetime::parse_datetime(&again).map_err(|e| e.to_string()), Ok(t), "{}", s);
        }
    }

    #[test]
    fn any_time_formats_without_panicking(t in any::<i64>()) {
        let _ = datetime::format_datetime(t);
    }

    // ------------------------------------------------------------------ command line

    #[test]
    fn generate_parser_never_panics(words in proptest::collection::vec(prop_oneof![
        text(),
        prop::sample::select(vec!["--help", "--admin", "--role", "--group", "-g", "--reset", "--expires-after",
            "--admin=x", "--role=", "--expires-after=1d", "localhost", "1 week", "-"]).prop_map(str::to_owned),
    ], 0..8)) {
        let _ = generate::parse_generate(&words);
    }

    #[test]
    fn generate_round_trips(
        host in "[a-z][a-z0-9.]{0,15}",
        roles in proptest::collection::vec("[a-z][a-z:_]{0,10}", 0..4),
        groups in proptest::collection::vec("[a-z0-9][a-z0-9_]{0,8}", 0..3),
        days in proptest::option::of(1u64..10_000),
        inline in any::<bool>(),
    ) {
        let mut words = vec![host.clone()];
        for role in &roles {
            if inline { words.push(format!("--role={role}")); } else { words.extend(["--role".to_owned(), role.clone()]); }
        }
        for group in &groups {
            words.extend(["--group".to_owned(), group.clone()]);
        }
        if let Some(days) = days {
            words.extend(["--expires-after".to_owned(), format!("{days}d")]);
        }
        let dedup = |list: &[String]| list.iter().fold(Vec::<String>::new(), |mut out, x| {
            if !out.contains(x) { out.push(x.clone()); }
            out
        });
        let parsed = generate::parse_generate(&words).map_err(|e| e.to_string());
        let GenerateCommand::Generate(request) = parsed.clone().unwrap_or(GenerateCommand::Help) else {
            return Err(TestCaseError::fail(format!("{words:?}: {parsed:?}")));
        };
        prop_assert_eq!(request.host, host);
        prop_assert_eq!(request.expires_after, days.map(|d| d * 86_400));
        prop_assert_eq!(request.mode, GenerateMode::Account { roles: dedup(&roles), groups: dedup(&groups), uses: None, rooms: vec![] });
    }

    #[test]
    fn shell_args_parser_never_panics(
        verb in 0..SHELL_COMMANDS.len(),
        words in proptest::collection::vec(prop_oneof![
            text(),
            prop::sample::select(vec!["--role", "--group", "--admin", "--no-admin", "--allow-registration",
                "--allow-registration=maybe", "--expires-after", "--", "--=", "true", "no"]).prop_map(str::to_owned),
        ], 0..8),
    ) {
        if let Some(command) = SHELL_COMMANDS.get(verb)
            && let Ok(parsed) = shell::parse_shell_args(command, &words)
        {
            prop_assert!(parsed.args.len() <= command.args.len());
        }
        let _ = shell::parse_flag(words.first().map_or("", String::as_str));
    }

    // ------------------------------------------------------------------ ad-hoc form values

    #[test]
    fn form_values_never_panic(raw in proptest::option::of(text()), prepped in proptest::option::of(text()), host in text()) {
        if let Ok(Some(name)) = adhoc::requested_username(raw.as_deref(), prepped.as_deref()) {
            prop_assert!(!name.is_empty() && name.len() <= jid::MAX_NODE_BYTES);
        }
        let _ = adhoc::reset_account(raw.as_deref(), &host);
        let fields = adhoc::invitation_fields(raw.as_deref().unwrap_or(""), prepped.as_deref(), 0);
        prop_assert!(!fields.is_empty());
    }

    // ------------------------------------------------------------------ classification

    #[test]
    fn creators_are_the_source_or_its_bare_jid(source in proptest::collection::vec(prop_oneof![
        Just(b'@'), Just(b'/'), Just(b'a'), Just(0xff), any::<u8>(),
    ], 1..24)) {
        let facts = InviteFacts {
            kind: Field::Text(b"roster"),
            allow_registration: false,
            allow_reset: false,
            source: Some(&source),
            max_uses: crate::record::MaxUses::Absent,
            jid: Field::Other,
            inviter: Field::Other,
            username: Field::Other,
        };
        let creator = facts.creator("example.com");
        prop_assert!(creator.is_ok(), "a source is never junk");
        let creator = creator.unwrap_or_default();
        if source.contains(&b'@') {
            // A bare JID is the source up to its resource.
            prop_assert!(source.starts_with(&creator), "{creator:?} of {source:?}");
        } else {
            prop_assert_eq!(&*creator, &source[..]);
        }
    }

    #[test]
    fn contact_creators_never_panic(jid in text(), inviter in proptest::option::of(text())) {
        let facts = InviteFacts {
            kind: Field::Text(b"roster"),
            allow_registration: true,
            allow_reset: false,
            source: None,
            max_uses: crate::record::MaxUses::Absent,
            jid: Field::Text(jid.as_bytes()),
            inviter: inviter.as_deref().map_or(Field::Missing, |i| Field::Text(i.as_bytes())),
            username: Field::Missing,
        };
        let creator = facts.creator("example.com");
        prop_assert!(creator.is_ok());
        prop_assert!(creator.unwrap_or_default().ends_with(b"@example.com") || inviter.is_none());
    }
}

/// base64url without padding, for checking what [`token::encode_token`] wrote.
fn base64url_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits: u32 = 0;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes() {
        let Some(value) = ALPHABET.iter().position(|&a| a == c) else { return Vec::new() };
        bits = (bits << 6) | u32::try_from(value).unwrap_or(0);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push(u8::try_from((bits >> count) & 0xff).unwrap_or(0));
        }
    }
    out
}
