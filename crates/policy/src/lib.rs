//! Governance.
//!
//! Role: who is calling ([`keys`], [`Principal`]), what they may do right now
//! ([`limiter`]: requests, tokens and parallel requests per minute on every
//! applicable scope) and what they may still spend ([`budget`]: worst-case
//! cost reserved before dispatch, settled to the actual cost afterwards).
//!
//! Invariants: a key is stored only as an HMAC; every applicable scope must
//! admit a request (all-or-nothing, nothing is left half-reserved); a
//! reservation is released or settled exactly once, also when dropped.

pub mod budget;
pub mod keys;
pub mod limiter;
pub mod shared;

use std::sync::Arc;

use modelgate_store::governance::{KeyRow, LimitFields, Member};

/// A scope that carries limits and budgets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ScopeId {
    Key(String),
    Team(String),
    User(String),
    EndUser(String),
}

impl ScopeId {
    /// `key:abc`, `team:...` — the label used in messages and counters.
    pub fn label(&self) -> String {
        match self {
            ScopeId::Key(id) => format!("key:{id}"),
            ScopeId::Team(id) => format!("team:{id}"),
            ScopeId::User(id) => format!("user:{id}"),
            ScopeId::EndUser(id) => format!("end_user:{id}"),
        }
    }
}

/// Who a request is from, resolved from its key.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key: KeyRow,
    pub team: Option<Member>,
    pub user: Option<Member>,
}

impl Principal {
    /// Whether the key has the admin role.
    pub fn is_admin(&self) -> bool {
        self.key.role == "admin"
    }

    /// Every scope with its limits, most specific first.
    pub fn scopes(&self) -> Vec<(ScopeId, &LimitFields)> {
        let mut v = vec![(ScopeId::Key(self.key.id.clone()), &self.key.limits)];
        if let Some(u) = &self.user {
            v.push((ScopeId::User(u.id.clone()), &u.limits));
        }
        if let Some(t) = &self.team {
            v.push((ScopeId::Team(t.id.clone()), &t.limits));
        }
        v
    }

    /// Whether `model` is allowed by the key, its user and its team (each
    /// list, when set, must allow it).
    pub fn allows_model(&self, model: &str) -> bool {
        [
            self.key.models.as_ref(),
            self.user.as_ref().and_then(|u| u.models.as_ref()),
            self.team.as_ref().and_then(|t| t.models.as_ref()),
        ]
        .into_iter()
        .flatten()
        .all(|patterns| patterns.iter().any(|p| model_matches(p, model)))
    }
}

/// `*` matches any run of characters: `gpt-*`, `openai/*`, `*`.
pub fn model_matches(pattern: &str, model: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == model;
    }
    let mut rest = model;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// Shared pointer to a principal.
pub type SharedPrincipal = Arc<Principal>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(model_matches("*", "anything"));
        assert!(model_matches("gpt-*", "gpt-4o"));
        assert!(!model_matches("gpt-*", "claude"));
        assert!(model_matches("openai/*-mini", "openai/gpt-4o-mini"));
        assert!(!model_matches("openai/*-mini", "openai/gpt-4o"));
        assert!(model_matches("exact", "exact"));
        assert!(!model_matches("exact", "exactly"));
    }
}
