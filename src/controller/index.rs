//! An owner index over the ReplicaSet cache, so a reconcile finds its ReplicaSets without
//! scanning every cached ReplicaSet (which would make a full resync quadratic).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::Event;

type Key = (String, String); // (namespace, owner uid)

/// Maps a controller owner uid to the names of the ReplicaSets it owns.
#[derive(Clone, Default)]
pub struct OwnerIndex {
    inner: Arc<RwLock<Maps>>,
}

#[derive(Default)]
struct Maps {
    live: HashMap<Key, BTreeSet<String>>,
    /// Built during a relist and swapped in when it completes, so deletions missed while
    /// disconnected disappear.
    relist: Option<HashMap<Key, BTreeSet<String>>>,
}

fn owner_key(rs: &ReplicaSet) -> Option<Key> {
    let owner = rs
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))?;
    Some((rs.namespace().unwrap_or_default(), owner.uid.clone()))
}

impl OwnerIndex {
    /// Feed a watcher event.
    pub fn observe(&self, ev: &Event<ReplicaSet>) {
        let Ok(mut maps) = self.inner.write() else {
            return;
        };
        match ev {
            Event::Init => maps.relist = Some(HashMap::new()),
            Event::InitApply(rs) => {
                if let Some(k) = owner_key(rs) {
                    let name = rs.name_any();
                    maps.live.entry(k.clone()).or_default().insert(name.clone());
                    if let Some(r) = maps.relist.as_mut() {
                        r.entry(k).or_default().insert(name);
                    }
                }
            }
            Event::InitDone => {
                if let Some(r) = maps.relist.take() {
                    maps.live = r;
                }
            }
            Event::Apply(rs) => {
                if let Some(k) = owner_key(rs) {
                    maps.live.entry(k).or_default().insert(rs.name_any());
                }
            }
            Event::Delete(rs) => {
                if let Some(k) = owner_key(rs)
                    && let Some(set) = maps.live.get_mut(&k)
                {
                    set.remove(&rs.name_any());
                    if set.is_empty() {
                        maps.live.remove(&k);
                    }
                }
            }
        }
    }

    /// The cached ReplicaSets whose controller is the object with `uid`.
    pub fn owned_by(&self, store: &Store<ReplicaSet>, ns: &str, uid: &str) -> Vec<ReplicaSet> {
        let key = (ns.to_string(), uid.to_string());
        let names: Vec<String> = match self.inner.read() {
            Ok(maps) => maps
                .live
                .get(&key)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        names
            .iter()
            .filter_map(|name| store.get(&ObjectRef::new(name).within(ns)))
            .filter(|rs| owner_key(rs).as_ref() == Some(&key))
            .map(|rs| (*rs).clone())
            .collect()
    }
}
