//! Interning of pod, tag and tenant names into the ids the kernel stores, persisted in the
//! pinned `NAMES` map so a restarted agent reads records written before it started.

use std::collections::{BTreeMap, HashMap};

use aya::maps::{HashMap as BpfHashMap, MapData};
use graylane_common::{NAME_BYTES, NameKey, NameKind, NameValue, map_names};

use super::DatapathError;

/// An immutable id → name table, published after every sync for readers (proxy, admin).
#[derive(Clone, Debug, Default)]
pub struct Names {
    by_id: HashMap<(u32, u32), String>,
}

impl Names {
    /// The name behind `id`, if it is known (`id` 0 means none).
    pub fn get(&self, kind: NameKind, id: u32) -> Option<&str> {
        if id == 0 {
            return None;
        }
        self.by_id.get(&(kind as u32, id)).map(String::as_str)
    }
}

/// The writer side: interns names and keeps the map in step.
pub struct Interner {
    by_name: BTreeMap<(u32, String), u32>,
    next_id: u32,
}

impl Interner {
    /// Loads what earlier agents interned.
    pub fn load(map: &BpfHashMap<MapData, NameKey, NameValue>) -> Self {
        let mut by_name = BTreeMap::new();
        let mut next_id = 1;
        for (key, value) in map.iter().filter_map(Result::ok) {
            if let Some(name) = value.as_str() {
                by_name.insert((key.kind, name.to_owned()), key.id);
                next_id = next_id.max(key.id.saturating_add(1));
            }
        }
        Self { by_name, next_id }
    }

    /// The id of `name`, writing a new entry if it is new. Ids are never reused.
    pub fn intern(
        &mut self,
        map: &mut BpfHashMap<MapData, NameKey, NameValue>,
        kind: NameKind,
        name: &str,
    ) -> Result<u32, DatapathError> {
        if let Some(id) = self.by_name.get(&(kind as u32, name.to_owned())) {
            return Ok(*id);
        }
        let value = NameValue::new(name)
            .ok_or_else(|| DatapathError::NameTooLong { name: name.into(), max: NAME_BYTES })?;
        let id = self.next_id;
        map.insert(NameKey { kind: kind as u32, id }, value, 0)
            .map_err(DatapathError::map(map_names::NAMES))?;
        self.next_id += 1;
        self.by_name.insert((kind as u32, name.to_owned()), id);
        Ok(id)
    }

    /// Forgets names no longer referenced (`keep` holds the ids in use).
    pub fn retain(
        &mut self,
        map: &mut BpfHashMap<MapData, NameKey, NameValue>,
        keep: &std::collections::BTreeSet<(u32, u32)>,
    ) {
        self.by_name.retain(|(kind, _), id| {
            let used = keep.contains(&(*kind, *id));
            if !used {
                let _ = map.remove(&NameKey { kind: *kind, id: *id });
            }
            used
        });
    }

    /// A snapshot for readers.
    pub fn snapshot(&self) -> Names {
        Names { by_id: self.by_name.iter().map(|((k, n), id)| ((*k, *id), n.clone())).collect() }
    }
}
