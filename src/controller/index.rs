//! An owner index over a reflector cache, so a reconcile finds its children without scanning
//! every cached object (which would make a full resync quadratic).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::Event;
use kube::{Resource, ResourceExt};

pub type Key = (String, String); // (namespace, owner uid)

/// Maps a controller owner uid to the names of the objects it owns.
pub struct OwnerIndex<K> {
    inner: Arc<RwLock<Maps>>,
    /// The (namespace, owner) an object is filed under; `None`: not indexed.
    key: fn(&K) -> Option<Key>,
}

impl<K> Clone for OwnerIndex<K> {
    fn clone(&self) -> Self {
        OwnerIndex {
            inner: self.inner.clone(),
            key: self.key,
        }
    }
}

impl<K: Resource> Default for OwnerIndex<K> {
    fn default() -> Self {
        OwnerIndex {
            inner: Arc::default(),
            key: owner_key::<K>,
        }
    }
}

impl<K> OwnerIndex<K> {
    /// An index by another notion of owner (e.g. the Rollout a Service's `managed-by-rollouts`
    /// annotation names).
    pub fn keyed_by(key: fn(&K) -> Option<Key>) -> Self {
        OwnerIndex {
            inner: Arc::default(),
            key,
        }
    }
}

#[derive(Default)]
struct Maps {
    live: HashMap<Key, BTreeSet<String>>,
    /// Built during a relist and swapped in when it completes, so deletions missed while
    /// disconnected disappear.
    relist: Option<HashMap<Key, BTreeSet<String>>>,
}

/// Objects without a controller owner are indexed under the empty uid, so orphans of a
/// namespace can be found (and adopted) without a scan.
fn owner_key<K: Resource>(obj: &K) -> Option<Key> {
    let uid = obj
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
        .map_or_else(String::new, |o| o.uid.clone());
    Some((obj.namespace().unwrap_or_default(), uid))
}

impl<K> OwnerIndex<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    /// Feed a watcher event.
    pub fn observe(&self, ev: &Event<K>) {
        let Ok(mut maps) = self.inner.write() else {
            return;
        };
        match ev {
            Event::Init => maps.relist = Some(HashMap::new()),
            Event::InitApply(obj) => {
                if let Some(k) = (self.key)(obj) {
                    let name = obj.name_any();
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
            Event::Apply(obj) => {
                if let Some(k) = (self.key)(obj) {
                    maps.live.entry(k).or_default().insert(obj.name_any());
                }
            }
            Event::Delete(obj) => {
                if let Some(k) = (self.key)(obj)
                    && let Some(set) = maps.live.get_mut(&k)
                {
                    set.remove(&obj.name_any());
                    if set.is_empty() {
                        maps.live.remove(&k);
                    }
                }
            }
        }
    }

    /// The cached objects whose controller is the object with `uid`.
    pub fn owned_by(&self, store: &Store<K>, ns: &str, uid: &str) -> Vec<K> {
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
            .filter(|obj| (self.key)(obj.as_ref()).as_ref() == Some(&key))
            .map(|obj| (*obj).clone())
            .collect()
    }
}
