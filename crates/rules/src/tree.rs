//! Who invited whom: the tree of accounts that came from an account's invites, derived from
//! audit records only (edges in, tree out), and the cap on a tree's size
//! (`invites_max_tree_size`).
//!
//! An edge is one registration: the creator of an invite (an account) and the account that
//! registered with it. An account has one parent: the creator of the invite it registered with
//! most recently (a name deleted and registered again belongs where it came from last). Parent
//! links may form a cycle (a deleted inviter's name registered again further down): every walk
//! here stops at an account it has seen.

use std::collections::{HashMap, HashSet};

use crate::datetime::format_datetime;
use crate::notify::{Use, creator_account};
use crate::{Error, Result};

/// One use of an invite, as its audit record holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditUse {
    /// The invite's token.
    pub token: String,
    /// The audit record's creator.
    pub creator: String,
    /// The account that used it (bare JID).
    pub account: String,
    /// When (Unix seconds).
    pub at: i64,
    /// `how`: `registered`, `contact-approved`, `password-reset`.
    pub how: String,
}

/// One registration with an account's invite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// The account whose invite it was (bare JID).
    pub inviter: String,
    /// The account that registered with it.
    pub account: String,
    /// When, Unix seconds.
    pub at: i64,
    /// The invite.
    pub token: String,
}

/// The edges among uses: registrations (not contact approvals of existing accounts, nor resets)
/// with invites an account created.
pub fn edges(uses: Vec<AuditUse>) -> Vec<Edge> {
    uses.into_iter()
        .filter(|u| Use::parse(&u.how) == Some(Use::Registered) && creator_account(&u.creator).is_some())
        .filter(|u| u.creator != u.account)
        .map(|u| Edge { inviter: u.creator, account: u.account, at: u.at, token: u.token })
        .collect()
}

/// An account in a tree, below its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// 1 for the root's invitees, 2 for theirs, …
    pub depth: usize,
    /// The account.
    pub account: String,
    /// When it registered.
    pub at: i64,
    /// The invite it registered with.
    pub token: String,
}

/// The accounts that came from `root`'s invites, recursively, depth first, each level in the
/// order they registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    /// The account the tree starts from.
    pub root: String,
    /// Every account below it, depth first.
    pub nodes: Vec<Node>,
}

/// Each account's parent edge: the latest registration of that name.
fn parents(edges: &[Edge]) -> HashMap<&str, &Edge> {
    let mut parent: HashMap<&str, &Edge> = HashMap::new();
    for edge in edges {
        let newer = parent.get(edge.account.as_str()).is_none_or(|known| (edge.at, &edge.token) > (known.at, &known.token));
        if newer {
            parent.insert(&edge.account, edge);
        }
    }
    parent
}

impl Tree {
    /// The tree below `root`.
    pub fn build(edges: &[Edge], root: &str) -> Self {
        let parent = parents(edges);
        let mut children: HashMap<&str, Vec<&Edge>> = HashMap::new();
        for edge in parent.values() {
            children.entry(edge.inviter.as_str()).or_default().push(edge);
        }
        for list in children.values_mut() {
            list.sort_by(|a, b| (a.at, &a.account).cmp(&(b.at, &b.account)));
        }
        let mut nodes = Vec::new();
        let mut seen: HashSet<&str> = HashSet::from([root]);
        // Depth first, children in order: a stack of (depth, edge), pushed in reverse.
        let mut stack: Vec<(usize, &Edge)> = Vec::new();
        stack.extend(children.get(root).into_iter().flatten().rev().map(|&edge| (1, edge)));
        while let Some((depth, edge)) = stack.pop() {
            if !seen.insert(&edge.account) {
                continue;
            }
            nodes.push(Node { depth, account: edge.account.clone(), at: edge.at, token: edge.token.clone() });
            stack.extend(children.get(edge.account.as_str()).into_iter().flatten().rev().map(|&child| (depth + 1, child)));
        }
        Self { root: root.to_owned(), nodes }
    }

    /// How many accounts came from the root's invites.
    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// Whether `creator` (an audit record's creator) is the root or an account of the tree.
    pub fn contains(&self, creator: &str) -> bool {
        creator == self.root || self.nodes.iter().any(|node| node.account == creator)
    }

    /// The tree as the shell prints it: the root, then one line per account, indented by depth,
    /// with when it registered (UTC) and the invite it used.
    pub fn render(&self) -> Vec<String> {
        let mut lines = vec![self.root.clone()];
        // Whether, after node i, another account comes at `depth` before the tree climbs above it.
        let followed =
            |i: usize, depth: usize| self.nodes[i + 1..].iter().take_while(|n| n.depth >= depth).any(|n| n.depth == depth);
        for (i, node) in self.nodes.iter().enumerate() {
            let mut prefix = String::new();
            for level in 1..node.depth {
                prefix.push_str(if followed(i, level) { "│  " } else { "   " });
            }
            let last = !followed(i, node.depth);
            let when = format_datetime(node.at).replace('T', " ");
            lines.push(format!(
                "{prefix}{}{}  registered {when}  invite {}",
                if last { "└─ " } else { "├─ " },
                node.account,
                node.token
            ));
        }
        lines
    }
}

/// The root of the tree `account` belongs to: up through who invited whom to the first account
/// that no account invited (itself when none did).
pub fn root_of(edges: &[Edge], account: &str) -> String {
    let parent = parents(edges);
    let mut seen: HashSet<&str> = HashSet::new();
    let mut current = account;
    while seen.insert(current) {
        match parent.get(current) {
            Some(edge) => current = &edge.inviter,
            None => break,
        }
    }
    current.to_owned()
}

/// `invites_max_tree_size`: whether `creator` may make another invite. The tree counted is the
/// whole one it belongs to (from its root down); full at `max` accounts. Creators that are not
/// accounts (shell, prosodyctl, API keys, modules) are never limited.
pub fn cap_check(edges: &[Edge], creator: &str, max: u32) -> Result<()> {
    if creator_account(creator).is_none() {
        return Ok(());
    }
    let root = root_of(edges, creator);
    let size = Tree::build(edges, &root).size();
    if size < max as usize {
        return Ok(());
    }
    Err(Error::QuotaExceeded(format!("No more invites: the invite tree of {root} has reached its limit of {max} accounts")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(inviter: &str, account: &str, at: i64) -> Edge {
        Edge { inviter: inviter.into(), account: account.into(), at, token: format!("T{at}") }
    }

    fn chain() -> Vec<Edge> {
        vec![
            edge("alice@x", "bob@x", 10),
            edge("bob@x", "carol@x", 20),
            edge("alice@x", "dave@x", 15),
            edge("carol@x", "erin@x", 30),
            edge("zed@x", "yan@x", 5),
        ]
    }

    #[test]
    fn edges_are_registrations_with_account_invites() {
        let u = |creator: &str, account: &str, how: &str| AuditUse {
            token: "t".into(),
            creator: creator.into(),
            account: account.into(),
            at: 1,
            how: how.into(),
        };
        let got = edges(vec![
            u("alice@x", "bob@x", "registered"),
            u("alice@x", "carol@y", "contact-approved"),
            u("admin@x", "alice@x", "password-reset"),
            u("shell", "dave@x", "registered"),
            u("api/token/1", "erin@x", "registered"),
            u("bob@x", "bob@x", "registered"),
        ]);
        assert_eq!(got, vec![Edge { inviter: "alice@x".into(), account: "bob@x".into(), at: 1, token: "t".into() }]);
    }

    #[test]
    fn tree_depth_first_in_order() {
        let tree = Tree::build(&chain(), "alice@x");
        let got: Vec<(usize, &str)> = tree.nodes.iter().map(|n| (n.depth, n.account.as_str())).collect();
        assert_eq!(got, [(1, "bob@x"), (2, "carol@x"), (3, "erin@x"), (1, "dave@x")]);
        assert_eq!(tree.size(), 4);
        assert!(tree.contains("alice@x") && tree.contains("erin@x") && !tree.contains("yan@x"));
        assert_eq!(Tree::build(&chain(), "carol@x").size(), 1);
        assert_eq!(Tree::build(&chain(), "nobody@x").size(), 0);
    }

    #[test]
    fn rendering() {
        let lines = Tree::build(&chain(), "alice@x").render();
        assert_eq!(
            lines,
            [
                "alice@x",
                "├─ bob@x  registered 1970-01-01 00:00:10Z  invite T10",
                "│  └─ carol@x  registered 1970-01-01 00:00:20Z  invite T20",
                "│     └─ erin@x  registered 1970-01-01 00:00:30Z  invite T30",
                "└─ dave@x  registered 1970-01-01 00:00:15Z  invite T15",
            ]
        );
        assert_eq!(Tree::build(&[], "a@x").render(), ["a@x"]);
    }

    #[test]
    fn roots_and_cycles() {
        assert_eq!(root_of(&chain(), "erin@x"), "alice@x");
        assert_eq!(root_of(&chain(), "alice@x"), "alice@x");
        assert_eq!(root_of(&chain(), "stranger@x"), "stranger@x");
        // a invited b; a was deleted and registered again with b's invite: a cycle.
        let cycle = vec![edge("a@x", "b@x", 1), edge("b@x", "a@x", 2), edge("b@x", "c@x", 3)];
        let root = root_of(&cycle, "c@x");
        assert!(root == "a@x" || root == "b@x");
        let tree = Tree::build(&cycle, "a@x");
        assert_eq!(tree.size(), 2, "{tree:?}");
        // The latest registration of a name is its parent.
        let again = vec![edge("a@x", "n@x", 1), edge("b@x", "n@x", 9)];
        assert_eq!(root_of(&again, "n@x"), "b@x");
        assert_eq!(Tree::build(&again, "a@x").size(), 0);
    }

    #[test]
    fn cap() {
        let edges = chain();
        assert_eq!(cap_check(&edges, "erin@x", 5), Ok(()));
        let refused = cap_check(&edges, "erin@x", 4);
        assert_eq!(
            refused,
            Err(Error::QuotaExceeded("No more invites: the invite tree of alice@x has reached its limit of 4 accounts".into()))
        );
        assert_eq!(cap_check(&edges, "alice@x", 4), refused);
        assert_eq!(
            cap_check(&edges, "yan@x", 1),
            Err(Error::QuotaExceeded("No more invites: the invite tree of zed@x has reached its limit of 1 accounts".into()))
        );
        assert_eq!(cap_check(&edges, "shell", 1), Ok(()));
        assert_eq!(cap_check(&edges, "new@x", 1), Ok(()));
    }
}
