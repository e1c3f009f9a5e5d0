//! Load the eBPF object, adopt or create the pinned maps, and adopt or attach one link per
//! hook. Pinned links keep capture alive when the agent dies (kill -9, OOM, upgrade).

use std::{fs::File, path::PathBuf, sync::Arc, time::Instant};

use aya::{
    Ebpf, EbpfLoader,
    maps::MapInfo,
    programs::{
        CgroupAttachMode, CgroupSock, CgroupSockAddr, SockOps,
        links::{FdLink, PinnedLink},
    },
};
use graylane_common::{LAYOUT_HASH, Meta, map_names};

use super::{
    CgroupRoot, ConnectEvents, Counters, DatapathError, DatapathStatus, Hook, LinkStatus, Listeners,
    MapStatus, MapSync, PinPaths, Records, layout, maps::SyncMaps, program_hash,
};

/// Where to install.
#[derive(Clone, Debug)]
pub struct DatapathConfig {
    pub pins: PinPaths,
    pub cgroup_root: CgroupRoot,
    /// Capacity of the record table (`RECORDS` max entries).
    pub records_max: u32,
}

/// The installed datapath: attached links, and the map handles handed to their users.
pub struct Datapath {
    /// Keeps loaded programs (and the log map) alive while this agent runs.
    _ebpf: Ebpf,
    /// The pinned links; dropping them closes our fds, the pins keep them attached.
    _links: Vec<PinnedLink>,
    pub sync: MapSync,
    pub records: Arc<Records>,
    pub counters: Counters,
    pub listeners: Arc<Listeners>,
    pub events: ConnectEvents,
    pub status: DatapathStatus,
}

impl Datapath {
    /// Installs or adopts the datapath described by `cfg`.
    pub fn install(cfg: &DatapathConfig) -> Result<Self, DatapathError> {
        let started = Instant::now();
        let pins = &cfg.pins;
        pins.prepare()?;
        let cgroup_id = cfg.cgroup_root.id()?;
        let program_hash = program_hash();

        let mut defs = layout::pinned_defs(super::EBPF_OBJECT)?;
        if let Some(def) = defs.get_mut(map_names::RECORDS) {
            def.max_entries = cfg.records_max;
        }
        let meta = layout::read_meta(pins);
        let replaced_maps = layout::replace_incompatible(pins, &defs, meta.as_ref())?;
        let links_reusable = replaced_maps.is_empty()
            && meta.is_some_and(|m| m.program_hash == program_hash && m.cgroup_id == cgroup_id);

        // A new record table or count (first run, replaced layout, upgrade) needs the
        // count seeded from the table after loading.
        let seed_count = [map_names::RECORDS, map_names::RECORD_COUNT].iter().any(|m| !pins.map(m).exists());
        let maps_dir = pins.maps();
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(&maps_dir)
            .map_max_entries(map_names::RECORDS, cfg.records_max)
            .load(super::EBPF_OBJECT)
            .map_err(DatapathError::Load)?;
        let cgroup = File::open(&cfg.cgroup_root.path)
            .map_err(|source| DatapathError::Cgroup { path: cfg.cgroup_root.path.clone(), cause: source })?;

        let mut links = Vec::new();
        let mut link_status = Vec::new();
        for hook in Hook::ALL {
            let pin = pins.links().join(hook.program());
            let adopted = links_reusable && pin.exists();
            let link = if adopted {
                PinnedLink::from_pin(&pin).map_err(|e| link_err(&pin, e))?
            } else {
                let fresh = attach(&mut ebpf, hook, &cgroup, pins)?;
                replace_pin(&pin)?;
                fresh.pin(&pin).map_err(|e| link_err(&pin, e))?
            };
            let info = FdLink::from(PinnedLink::from_pin(&pin).map_err(|e| link_err(&pin, e))?)
                .info()
                .map_err(|e| link_err(&pin, e))?;
            link_status.push(LinkStatus { hook, link_id: info.id(), program_id: info.program_id(), adopted });
            links.push(link);
        }
        init_logger(&mut ebpf, &link_status);

        let mut sync = MapSync::adopt(SyncMaps {
            config: typed(&mut ebpf, map_names::CONFIG)?,
            meta: typed(&mut ebpf, map_names::META)?,
            pods: typed(&mut ebpf, map_names::PODS)?,
            pod_ips: typed(&mut ebpf, map_names::POD_IPS)?,
            capture: typed(&mut ebpf, map_names::CAPTURE)?,
            excluded_ports: typed(&mut ebpf, map_names::EXCLUDED_PORTS)?,
            names: typed(&mut ebpf, map_names::NAMES)?,
            lane_routes: [
                typed(&mut ebpf, map_names::LANE_ROUTES[0])?,
                typed(&mut ebpf, map_names::LANE_ROUTES[1])?,
            ],
        });
        sync.write_meta(Meta {
            layout_hash: LAYOUT_HASH,
            program_hash,
            cgroup_id,
            agent_pid: std::process::id(),
            _pad: 0,
        })?;
        let mut records = Records::new(
            typed(&mut ebpf, map_names::RECORDS)?,
            typed(&mut ebpf, map_names::PENDING)?,
            typed(&mut ebpf, map_names::RECORD_COUNT)?,
        );
        if seed_count {
            records.seed_count()?;
        }
        let counters = Counters::new(typed(&mut ebpf, map_names::COUNTERS)?);
        let listeners = Arc::new(Listeners::new(typed(&mut ebpf, map_names::LISTENERS)?));
        let events = ConnectEvents::new(typed(&mut ebpf, map_names::CONNECT_EVENTS)?);

        let status = DatapathStatus {
            pin_dir: pins.dir.clone(),
            cgroup_root: cfg.cgroup_root.path.clone(),
            cgroup_id,
            maps: map_status(pins),
            links: link_status,
            replaced_maps,
            install_us: started.elapsed().as_micros() as u64,
        };
        Ok(Self {
            _ebpf: ebpf,
            _links: links,
            sync,
            records: Arc::new(records),
            counters,
            listeners,
            events,
            status,
        })
    }
}

/// Loads `hook`'s program, pins it, attaches it to the cgroup and returns the new link.
fn attach(ebpf: &mut Ebpf, hook: Hook, cgroup: &File, pins: &PinPaths) -> Result<FdLink, DatapathError> {
    let name = hook.program();
    let prog = ebpf.program_mut(name).ok_or(DatapathError::Object(format!("program {name} missing")))?;
    let perr = |source| DatapathError::Program { program: name, cause: source };
    let prog_pin = pins.progs().join(name);
    replace_pin(&prog_pin)?;
    let link: FdLink = match hook {
        Hook::Connect4 | Hook::Connect6 | Hook::Getpeername4 | Hook::Getpeername6 => {
            let p: &mut CgroupSockAddr = prog.try_into().map_err(perr)?;
            p.load().map_err(perr)?;
            p.pin(&prog_pin).map_err(|e| link_err(&prog_pin, e))?;
            let id = p.attach(cgroup, CgroupAttachMode::Single).map_err(perr)?;
            p.take_link(id).map_err(perr)?.try_into().map_err(|e| link_err(&prog_pin, e))?
        }
        Hook::SockOps => {
            let p: &mut SockOps = prog.try_into().map_err(perr)?;
            p.load().map_err(perr)?;
            p.pin(&prog_pin).map_err(|e| link_err(&prog_pin, e))?;
            let id = p.attach(cgroup, CgroupAttachMode::Single).map_err(perr)?;
            p.take_link(id).map_err(perr)?.try_into().map_err(|e| link_err(&prog_pin, e))?
        }
        Hook::SockRelease => {
            let p: &mut CgroupSock = prog.try_into().map_err(perr)?;
            p.load().map_err(perr)?;
            p.pin(&prog_pin).map_err(|e| link_err(&prog_pin, e))?;
            let id = p.attach(cgroup, CgroupAttachMode::Single).map_err(perr)?;
            p.take_link(id).map_err(perr)?.try_into().map_err(|e| link_err(&prog_pin, e))?
        }
    };
    Ok(link)
}

/// Removes a pin if present. For a link pin this detaches the old link once no process
/// holds it, after the new one is attached: a brief overlap, never a gap.
fn replace_pin(path: &PathBuf) -> Result<(), DatapathError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DatapathError::Pin { path: path.clone(), cause: source }),
    }
}

fn link_err(path: &std::path::Path, e: impl std::fmt::Display) -> DatapathError {
    DatapathError::Link { path: path.into(), message: e.to_string() }
}

/// Takes map `name` out of the object as the typed handle `T`.
fn typed<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, DatapathError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or(DatapathError::MissingMap { map: name })?;
    T::try_from(map).map_err(DatapathError::map(name))
}

fn map_status(pins: &PinPaths) -> Vec<MapStatus> {
    map_names::ALL
        .iter()
        .filter_map(|name| {
            let info = MapInfo::from_pin(pins.map(name)).ok()?;
            Some(MapStatus { name: (*name).to_owned(), id: info.id() })
        })
        .collect()
}

/// Forwards kernel-side `aya-log` records to our log. Adopted programs log into the map of
/// the agent that loaded them, so read through the program id.
fn init_logger(ebpf: &mut Ebpf, links: &[LinkStatus]) {
    let logger = match links.first() {
        Some(l) if l.adopted => aya_log::EbpfLogger::init_from_id(l.program_id),
        _ => aya_log::EbpfLogger::init(ebpf),
    };
    match logger {
        Ok(logger) => {
            std::thread::Builder::new()
                .name("ebpf-log".into())
                .spawn(move || poll_logs(logger))
                .map(|_| ())
                .unwrap_or_else(|e| tracing::warn!(error = %e, "eBPF log thread not started"));
        }
        Err(e) => tracing::debug!(error = %e, "eBPF logs unavailable"),
    }
}

fn poll_logs<T: log::Log>(mut logger: aya_log::EbpfLogger<T>) {
    loop {
        logger.flush();
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
