//! [`Component`]: the kit's unit of composition — monitors, their prerequisite probe,
//! routes and status, hosted together by a [`Daemon`](crate::Daemon).
//!
//! A host daemon is made of components (a `consensus-node` with an upgrade monitor and a
//! migration monitor; a `block-node` with a traffic-shaper monitor), each with its own
//! monitors, its own [`StatusTracker`], its own prerequisite probe and its own routes
//! under `/<component>/`. The daemon serves `/status` as the nested
//! [`ComponentsStatus`](crate::status::ComponentsStatus) document.
//!
//! # Prerequisites never crash-loop
//!
//! A component's probe — by default every monitor's
//! [`prerequisite`](crate::Monitor::prerequisite), plus those given with
//! [`Component::probe`] — runs **in the background**: the daemon binds its socket and
//! sends `READY=1` without waiting for it, retries it every probe interval (default 30 s,
//! first at once), and shows a failure in `/status` (`probe_errors`, with `since` the
//! first failure of the streak), in `/ready` (503) and in systemd's `STATUS=`, until it
//! passes. Gating the process on probes instead (exit 69) restarts it in a loop under
//! `Restart=always` on a host missing a prerequisite, with no socket to ask why in
//! between: the failure the Go daemonkit's main consumer met and undid. Use
//! [`DaemonBuilder::startup_probe`](crate::DaemonBuilder::startup_probe) only for
//! what the process truly cannot run without.
//!
//! A component's monitors start only once its probe has passed
//! ([`StartMonitors::AfterProbePasses`], the default: a monitor started without what it
//! needs would only crash and back off); [`StartMonitors::AtOnce`] starts them at once,
//! as the Go daemonkit does. A component without a probe starts at once.

use std::fmt;
use std::sync::Arc;

use axum::Router;

use crate::monitor::Monitor;
use crate::probe::Probe;
use crate::status::StatusTracker;
use crate::supervisor::RestartPolicy;

/// When a component's monitors start, relative to its prerequisite probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StartMonitors {
    /// Once the probe has passed for the first time (the default).
    #[default]
    AfterProbePasses,
    /// At once, whatever the probe says (the Go daemonkit's behaviour).
    AtOnce,
}

/// A named group of monitors with their prerequisite probe, routes and status; see the
/// [module documentation](self).
///
/// Built by value (`Component::new(name).monitor(…).probe(…)`); the daemon checks it
/// when it is built ([`DaemonBuilder::build`](crate::DaemonBuilder::build)): the name
/// follows the route-prefix rules (1 to 64 bytes of `a-z`, `0-9`, `_`, `-`, not a
/// built-in route), monitor names are unique within the component.
///
/// # Examples
///
/// ```
/// use axum::Router;
/// use axum::routing::get;
/// use daemonkit::component::Component;
/// use daemonkit::probe::{ProbeExt, WriteTest};
/// use daemonkit::monitor_fn;
///
/// let shaper = monitor_fn("traffic-shaper", |cancel| async move {
///     cancel.cancelled().await;
///     Ok(())
/// });
/// let component = Component::new("block-node")
///     .monitor(shaper)
///     .probe(WriteTest::new("/var/lib/block-node").tagged(
///         "DataDirNotWritable",
///         "sudo chown block-node: /var/lib/block-node",
///     ));
/// // A route reading the component's own monitors.
/// let tracker = component.tracker().clone();
/// let component = component.routes(Router::new().route(
///     "/shaper",
///     get(move || {
///         let state = tracker.get("traffic-shaper").map(|s| s.state.to_string());
///         async move { state.unwrap_or_default() }
///     }),
/// ));
/// assert_eq!(component.name(), "block-node");
/// ```
#[must_use = "a component does nothing until a daemon hosts it"]
pub struct Component {
    pub(crate) name: String,
    pub(crate) monitors: Vec<(Arc<dyn Monitor>, Option<RestartPolicy>)>,
    pub(crate) probes: Vec<Arc<dyn Probe>>,
    pub(crate) routes: Option<Router>,
    pub(crate) policy: Option<RestartPolicy>,
    pub(crate) tracker: StatusTracker,
    pub(crate) start: StartMonitors,
}

impl fmt::Debug for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Component")
            .field("name", &self.name)
            .field(
                "monitors",
                &self
                    .monitors
                    .iter()
                    .map(|(m, _)| m.name())
                    .collect::<Vec<_>>(),
            )
            .field("probes", &self.probes.len())
            .field("routes", &self.routes.is_some())
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}

impl Component {
    /// An empty component called `name`: no monitors, no probe, no routes, the daemon's
    /// restart policy.
    pub fn new(name: impl Into<String>) -> Self {
        Component {
            name: name.into(),
            monitors: Vec::new(),
            probes: Vec::new(),
            routes: None,
            policy: None,
            tracker: StatusTracker::new(),
            start: StartMonitors::default(),
        }
    }

    /// The component's name: its key in `/status`, `/metrics` and its route prefix.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tracker the component's monitors report to, e.g. for a route or a
    /// transition listener set up before the daemon runs.
    pub fn tracker(&self) -> &StatusTracker {
        &self.tracker
    }

    /// Adds a monitor, under the component's restart policy.
    pub fn monitor(mut self, monitor: Arc<dyn Monitor>) -> Self {
        self.monitors.push((monitor, None));
        self
    }

    /// Adds a monitor with a restart policy of its own.
    pub fn monitor_with_policy(mut self, monitor: Arc<dyn Monitor>, policy: RestartPolicy) -> Self {
        self.monitors.push((monitor, Some(policy)));
        self
    }

    /// Adds a probe to the component's prerequisites (beside its monitors'
    /// [`prerequisite`](crate::Monitor::prerequisite)s).
    pub fn probe(mut self, probe: impl Probe) -> Self {
        self.probes.push(Arc::new(probe));
        self
    }

    /// Mounts the component's routes under `/<name>/` (the router sees paths without
    /// the prefix).
    pub fn routes(mut self, routes: Router) -> Self {
        self.routes = Some(routes);
        self
    }

    /// The restart policy of the component's monitors added without their own (default:
    /// the daemon's).
    pub fn policy(mut self, policy: RestartPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// When the monitors start relative to the probe (default
    /// [`StartMonitors::AfterProbePasses`]).
    pub fn start_monitors(mut self, start: StartMonitors) -> Self {
        self.start = start;
        self
    }
}
