//! Yatai's domain: the types and rules of the registry, free of I/O.
//!
//! Everything that decides *whether* something is allowed or valid lives here, so that the
//! REST API, the dashboard and the command line apply one rule each.

/// Declares a closed set of values with wire names: `as_str`, `Display`, `FromStr` (a clear error
/// naming the choices) and `TryFrom<String>` (for typed database rows).
#[macro_export]
macro_rules! wire_enum {
    ($(#[$meta:meta])* $vis:vis enum $ty:ident ($what:literal) { $($(#[$vmeta:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $ty { $($(#[$vmeta])* $variant),+ }

        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The wire (and stored) name.
            pub const fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $wire),+ }
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = $crate::Error;
            fn from_str(s: &str) -> $crate::Result<Self> {
                match s {
                    $($wire => Ok($ty::$variant),)+
                    other => Err($crate::Error::invalid(format!(
                        concat!("unknown ", $what, " {:?}; expected one of: {}"),
                        other,
                        [$($wire),+].join(", ")
                    ))),
                }
            }
        }

        impl ::std::convert::TryFrom<String> for $ty {
            type Error = $crate::Error;
            fn try_from(s: String) -> $crate::Result<Self> {
                s.parse()
            }
        }
    };
}

pub mod access;
pub mod deployments;
pub mod error;
pub mod manifest;
pub mod names;
pub mod paging;
pub mod registry;
pub mod time;

pub use access::{Action, Role, Scope};
pub use error::{Error, Result};
