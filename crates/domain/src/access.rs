//! Who may do what: member roles, API token scopes, and the one rule that combines them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// A member's role in an organization, from least to most powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything in the organization.
    Guest,
    /// Also pushes, updates and deletes bentos and models.
    Developer,
    /// Also manages members, users, the organization and clusters.
    Admin,
}

/// The scope of an API token: what a request made with it may touch, on top of the owner's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The registry API the BentoML CLI speaks: read and push bentos and models.
    Api,
    /// Read organization resources (repositories, members, events, tokens).
    ReadOrganization,
    /// Change organization resources.
    WriteOrganization,
    /// Read clusters and deployments.
    ReadCluster,
    /// Change clusters and deployments.
    WriteCluster,
}

impl Scope {
    /// Every scope, in the order they are documented.
    pub const ALL: [Scope; 5] = [
        Scope::Api,
        Scope::ReadOrganization,
        Scope::WriteOrganization,
        Scope::ReadCluster,
        Scope::WriteCluster,
    ];

    /// The scope's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Api => "api",
            Scope::ReadOrganization => "read_organization",
            Scope::WriteOrganization => "write_organization",
            Scope::ReadCluster => "read_cluster",
            Scope::WriteCluster => "write_cluster",
        }
    }
}

impl Role {
    /// The role's wire name.
    pub fn as_str(self) -> &'static str {
        self.as_str_const()
    }

    /// The role's wire name, usable in constants.
    pub const fn as_str_const(self) -> &'static str {
        match self {
            Role::Guest => "guest",
            Role::Developer => "developer",
            Role::Admin => "admin",
        }
    }
}

macro_rules! wire_names {
    ($ty:ty, $what:literal, [$($v:expr),+]) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                [$($v),+]
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| Error::invalid(format!(concat!("unknown ", $what, " {:?}; expected one of: {}"), s, [$($v.as_str()),+].join(", "))))
            }
        }
        impl TryFrom<String> for $ty {
            type Error = Error;
            fn try_from(s: String) -> Result<Self> {
                s.parse()
            }
        }
    };
}
wire_names!(Role, "role", [Role::Guest, Role::Developer, Role::Admin]);
wire_names!(
    Scope,
    "scope",
    [
        Scope::Api,
        Scope::ReadOrganization,
        Scope::WriteOrganization,
        Scope::ReadCluster,
        Scope::WriteCluster
    ]
);

/// Everything a request can ask to do inside an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Read bentos, models and their repositories.
    ReadRegistry,
    /// Create, push, update or delete bentos and models.
    WriteRegistry,
    /// Read the organization, its members, events and labels.
    ReadOrganization,
    /// Change the organization's settings and labels.
    WriteOrganization,
    /// Add, change or remove members and create users.
    ManageMembers,
    /// Create, change or revoke one's own API tokens.
    ManageOwnTokens,
    /// Read clusters and deployments.
    ReadCluster,
    /// Register or change clusters.
    WriteCluster,
    /// Create, change, terminate or delete deployments.
    WriteDeployment,
}

impl Action {
    /// The least role a member needs for this action.
    pub fn required_role(self) -> Role {
        match self {
            Action::ReadRegistry
            | Action::ReadOrganization
            | Action::ReadCluster
            | Action::ManageOwnTokens => Role::Guest,
            // Deploying is a developer's work (as in Yatai 1.x); registering a cluster, which
            // holds credentials, is an administrator's.
            Action::WriteRegistry | Action::WriteDeployment => Role::Developer,
            Action::WriteOrganization | Action::ManageMembers | Action::WriteCluster => Role::Admin,
        }
    }

    /// Whether a token with `scope` may be used for this action.
    pub fn allowed_by_scope(self, scope: Scope) -> bool {
        use Action as A;
        use Scope as S;
        matches!(
            (self, scope),
            (A::ReadRegistry | A::WriteRegistry, S::Api)
                | (
                    A::ReadRegistry | A::ReadOrganization,
                    S::ReadOrganization | S::WriteOrganization
                )
                | (
                    A::WriteOrganization | A::ManageMembers | A::ManageOwnTokens,
                    S::WriteOrganization
                )
                | (A::ReadCluster, S::ReadCluster | S::WriteCluster)
                | (A::WriteCluster | A::WriteDeployment, S::WriteCluster)
        )
    }

    /// Reads as "push bentos and models", for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Action::ReadRegistry => "read bentos and models",
            Action::WriteRegistry => "push, change or delete bentos and models",
            Action::ReadOrganization => "read the organization",
            Action::WriteOrganization => "change the organization",
            Action::ManageMembers => "manage members and users",
            Action::ManageOwnTokens => "manage API tokens",
            Action::ReadCluster => "read clusters and deployments",
            Action::WriteCluster => "register or change clusters",
            Action::WriteDeployment => "create, change or delete deployments",
        }
    }
}

/// Decides whether a member with `role`, authenticated by a token with `scopes` (or by a
/// browser session when `scopes` is `None`), may perform `action`. The one permission rule.
pub fn authorize(role: Role, scopes: Option<&[Scope]>, action: Action) -> Result<()> {
    if role < action.required_role() {
        return Err(Error::Forbidden(format!(
            "your role in this organization is {role}; to {} you need to be {}",
            action.describe(),
            action.required_role()
        )));
    }
    if let Some(scopes) = scopes {
        if !scopes.iter().any(|s| action.allowed_by_scope(*s)) {
            let needed: Vec<&str> = Scope::ALL
                .iter()
                .filter(|s| action.allowed_by_scope(**s))
                .map(|s| s.as_str())
                .collect();
            return Err(Error::Forbidden(format!(
                "this API token may not {}; it needs one of the scopes: {}",
                action.describe(),
                needed.join(", ")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_order_and_parse() {
        assert!(Role::Guest < Role::Developer && Role::Developer < Role::Admin);
        assert_eq!("admin".parse::<Role>().unwrap(), Role::Admin);
        assert!("root".parse::<Role>().is_err());
        assert_eq!(
            "write_cluster".parse::<Scope>().unwrap(),
            Scope::WriteCluster
        );
    }

    #[test]
    fn sessions_follow_the_role_only() {
        assert!(authorize(Role::Guest, None, Action::ReadRegistry).is_ok());
        assert!(authorize(Role::Guest, None, Action::WriteRegistry).is_err());
        assert!(authorize(Role::Developer, None, Action::WriteRegistry).is_ok());
        assert!(authorize(Role::Developer, None, Action::ManageMembers).is_err());
        assert!(authorize(Role::Admin, None, Action::ManageMembers).is_ok());
    }

    #[test]
    fn tokens_need_role_and_scope() {
        let api = [Scope::Api];
        assert!(authorize(Role::Admin, Some(&api), Action::WriteRegistry).is_ok());
        assert!(authorize(Role::Guest, Some(&api), Action::WriteRegistry).is_err());
        assert!(authorize(Role::Admin, Some(&api), Action::ManageMembers).is_err());
        let read = [Scope::ReadOrganization];
        assert!(authorize(Role::Admin, Some(&read), Action::ReadRegistry).is_ok());
        assert!(authorize(Role::Admin, Some(&read), Action::WriteRegistry).is_err());
        let err = authorize(Role::Admin, Some(&read), Action::WriteRegistry).unwrap_err();
        assert!(err.to_string().contains("api"), "{err}");
    }
}
