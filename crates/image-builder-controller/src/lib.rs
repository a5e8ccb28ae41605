//! The `image-builder` controller: it watches `BentoRequest`s and answers each with a `Bento`.
//!
//! - [`desired`]: pure functions: the `Bento` a request gets, and condition bookkeeping.
//! - [`reconcile`]: one pass over a request: is the image in the registry already (or given)?
//!   If not, build it (in-process, through [`ImageBuilder`]); then create or update the `Bento`
//!   of the same name, owned by the request (deleting the request deletes it), and set the
//!   conditions `ImageExistsChecked`, `ImageExists`, `ImageBuilding`, `BentoAvailable`, with a
//!   Kubernetes event at each step. Failed builds are retried with exponential back-off
//!   ([`error_policy`]): they never loop hot.
//! - [`job`]: Job mode (`--build-in-job`): the `batch/v1` Job that runs `yatai image build`
//!   instead of building in this process, and how to read its state.
//! - [`run`]: the controller loop (`yatai image-builder`).

pub mod builder;
pub mod desired;
pub mod job;
pub mod reconcile;

pub use builder::{ImageBuilder, InProcessBuilder};
pub use job::JobSettings;
pub use reconcile::{error_policy, reconcile, run, Context, Error};
