//! The wrapper's confinement on Linux: resource limits, a seccomp filter on
//! socket creation, and a Landlock ruleset, each applied to the wrapper
//! itself before it execs the command (all three are inherited across exec
//! and by every child).

use std::collections::BTreeMap;

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, LandlockStatus, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, path_beneath_rules,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

use super::{Policy, Report, set_limits};

/// The newest Landlock ABI baton asks for; older kernels give what they have.
const ABI_WANTED: ABI = ABI::V6;

pub fn confine(policy: &Policy) -> Report {
    let mut missing = Vec::new();
    let limits_set = set_limits(&policy.limits, &mut missing);
    let network_confined = if policy.network {
        false
    } else {
        match deny_network() {
            Ok(()) => true,
            Err(error) => {
                missing.push(format!("seccomp ({error})"));
                false
            }
        }
    };
    if let Err(error) = drop_introspection() {
        missing.push(format!("dropping CAP_SYS_PTRACE ({error})"));
    }
    let (landlock_abi, landlock_tcp) = match restrict_filesystem(policy) {
        Ok(applied) => applied,
        Err(reason) => {
            missing.push(reason);
            (None, false)
        }
    };
    Report {
        landlock_abi,
        network_confined,
        landlock_tcp,
        limits_set,
        missing,
    }
}

/// The capabilities that let a process read another's `/proc/<pid>/environ`
/// and memory past its being non-dumpable: CAP_SYS_PTRACE, and, for
/// reading (perf's path into `ptrace_may_access`), CAP_PERFMON and
/// CAP_SYS_ADMIN. Found on this kernel by dropping one at a time.
const INTROSPECTION: [caps::Capability; 3] = [
    caps::Capability::CAP_SYS_PTRACE,
    caps::Capability::CAP_PERFMON,
    caps::Capability::CAP_SYS_ADMIN,
];

/// baton is not dumpable, so only [`INTROSPECTION`] lets a process read
/// its environment (the model key) or memory: a command run by root loses
/// them, from every set and the bounding set first, so exec cannot give
/// them back.
fn drop_introspection() -> Result<(), caps::errors::CapsError> {
    use caps::CapSet;
    for capability in INTROSPECTION {
        if !caps::has_cap(None, CapSet::Permitted, capability)? {
            continue;
        }
        for set in [
            CapSet::Bounding,
            CapSet::Ambient,
            CapSet::Inheritable,
            CapSet::Effective,
            CapSet::Permitted,
        ] {
            caps::drop(None, set, capability)?;
        }
    }
    Ok(())
}

/// `socket(AF_INET | AF_INET6 | AF_PACKET | AF_UNIX, …)` fails with
/// EACCES: a Unix socket is a way out too (a Docker daemon's socket is a
/// root shell with the network; systemd-resolved's resolves names, a DNS
/// leak). `socketpair` (pipes between a command's own processes) and
/// netlink stay. io_uring is refused outright: it can open sockets past the
/// filter.
fn deny_network() -> Result<(), String> {
    let domain = |family: i32| -> Result<SeccompRule, seccompiler::BackendError> {
        SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            u64::from(family.unsigned_abs()),
        )?])
    };
    let build = || -> Result<BpfProgram, seccompiler::Error> {
        let mut rules = BTreeMap::new();
        rules.insert(
            libc::SYS_socket,
            vec![
                domain(libc::AF_INET)?,
                domain(libc::AF_INET6)?,
                domain(libc::AF_PACKET)?,
                domain(libc::AF_UNIX)?,
            ],
        );
        for call in [
            libc::SYS_io_uring_setup,
            libc::SYS_io_uring_enter,
            libc::SYS_io_uring_register,
        ] {
            rules.insert(call, Vec::new());
        }
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::EACCES.unsigned_abs()),
            std::env::consts::ARCH.try_into()?,
        )?;
        Ok(filter.try_into()?)
    };
    let program = build().map_err(|error| error.to_string())?;
    seccompiler::apply_filter(&program).map_err(|error| error.to_string())
}

/// Read everywhere, write beneath `policy.writable`; without the network,
/// Landlock's TCP rules (ABI 4+) deny bind and connect too. Returns the ABI
/// in force and whether TCP is confined.
fn restrict_filesystem(policy: &Policy) -> Result<(Option<u32>, bool), String> {
    let writable: Vec<_> = policy
        .writable
        .iter()
        .filter(|path| path.exists())
        .collect();
    let apply = || -> Result<landlock::RestrictionStatus, landlock::RulesetError> {
        let mut ruleset = Ruleset::default()
            .set_compatibility(CompatLevel::BestEffort)
            .handle_access(AccessFs::from_all(ABI_WANTED))?;
        if !policy.network {
            // Abstract Unix sockets (no file to deny) and signals to
            // processes outside the sandbox (baton's): scoped on ABI 6+.
            ruleset = ruleset
                .handle_access(AccessNet::from_all(ABI_WANTED))?
                .scope(Scope::AbstractUnixSocket | Scope::Signal)?;
        }
        ruleset
            .create()?
            .add_rules(path_beneath_rules(["/"], AccessFs::from_read(ABI_WANTED)))?
            .add_rules(path_beneath_rules(
                writable.iter(),
                AccessFs::from_all(ABI_WANTED),
            ))?
            .restrict_self()
    };
    let status = apply().map_err(|error| format!("Landlock ({error})"))?;
    match (status.ruleset, status.landlock) {
        (RulesetStatus::NotEnforced, LandlockStatus::NotImplemented) => {
            Err("Landlock (not built into this kernel)".into())
        }
        (RulesetStatus::NotEnforced, LandlockStatus::NotEnabled) => Err(
            "Landlock (built in but not enabled: add `landlock` to the `lsm=` boot parameter)"
                .into(),
        ),
        (RulesetStatus::NotEnforced, _) => Err("Landlock (not enforced)".into()),
        (_, LandlockStatus::Available { effective_abi, .. }) => {
            let abi = (effective_abi as u32).min(ABI_WANTED as u32);
            Ok((Some(abi), !policy.network && abi >= 4))
        }
        (_, _) => Ok((None, false)),
    }
}
