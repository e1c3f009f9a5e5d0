//! Pinned maps must match the layout this agent was built with: a map whose definition
//! changed between versions is replaced, never silently reused.

use std::collections::BTreeMap;

use aya::maps::{Array, Map, MapData, MapInfo};
use aya_obj::maps::PinningType;
use graylane_common::{LAYOUT_HASH, Meta, map_names};

use super::{DatapathError, PinPaths};

/// A map as the eBPF object defines it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapDef {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
}

/// Every map of the object that is pinned by name.
pub fn pinned_defs(object: &[u8]) -> Result<BTreeMap<String, MapDef>, DatapathError> {
    let obj = aya_obj::Object::parse(object).map_err(|e| DatapathError::Object(e.to_string()))?;
    Ok(obj
        .maps
        .iter()
        .filter(|(_, m)| m.pinning() == PinningType::ByName)
        .map(|(name, m)| {
            let def = MapDef {
                map_type: m.map_type(),
                key_size: m.key_size(),
                value_size: m.value_size(),
                max_entries: m.max_entries(),
                flags: m.map_flags(),
            };
            (name.clone(), def)
        })
        .collect())
}

/// The `META` entry of the pinned state, if there is one.
pub fn read_meta(paths: &PinPaths) -> Option<Meta> {
    let data = MapData::from_pin(paths.map(map_names::META)).ok()?;
    let array: Array<MapData, Meta> = Array::try_from(Map::Array(data)).ok()?;
    array.get(&0, 0).ok()
}

/// Why a pinned map cannot be reused, or `None` if it can (or is not pinned).
fn incompatibility(paths: &PinPaths, name: &str, def: &MapDef, layout_ok: bool) -> Option<String> {
    let info = MapInfo::from_pin(paths.map(name)).ok()?;
    let pinned = MapDef {
        map_type: info.map_type().map(|t| t as u32).unwrap_or(u32::MAX),
        key_size: info.key_size(),
        value_size: info.value_size(),
        max_entries: info.max_entries(),
        flags: info.map_flags(),
    };
    if pinned != *def {
        return Some(format!("pinned {pinned:?}, built {def:?}"));
    }
    (!layout_ok).then(|| format!("layout hash differs (built {LAYOUT_HASH:#x})"))
}

/// Removes the pins of maps that do not match `defs`; returns the names replaced.
pub fn replace_incompatible(
    paths: &PinPaths,
    defs: &BTreeMap<String, MapDef>,
    meta: Option<&Meta>,
) -> Result<Vec<String>, DatapathError> {
    let layout_ok = meta.is_some_and(|m| m.layout_hash == LAYOUT_HASH);
    let mut replaced = Vec::new();
    for (name, def) in defs {
        if let Some(why) = incompatibility(paths, name, def, layout_ok) {
            let path = paths.map(name);
            tracing::warn!(map = %name, %why, "pinned map layout changed: replacing it");
            std::fs::remove_file(&path).map_err(|source| DatapathError::Pin { path, cause: source })?;
            replaced.push(name.clone());
        }
    }
    Ok(replaced)
}
