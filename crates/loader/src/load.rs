//! The `Loader` builder and what it yields: a [`LoadedModel`] and a [`LoadReport`].
//!
//! By default every tensor is kept as stored: contiguous tensors are zero-copy views
//! of the mapped file, strided pickle views are gathered into owned buffers. With a
//! [`Policy`] tensors are converted (quantized, requantized through f32, or
//! dequantized) in chunks bounded by the memory budget, straight into their final
//! buffers, and the source pages already converted are released. Pre-quantized
//! weights are kept native or decoded; a cache directory maps earlier conversions; a
//! placement plan puts tensors on devices.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use qload_formats::{DType, OpenOptions, TensorInfo, WeightSource};
use serde::{Deserialize, Serialize};

use qload_prequant::{Detection, PrequantTensor, Requested, Scheme};

use crate::convert::{Conversion, ErrorStats, convert, convert_prequant};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::names::{Direction, Family, map_name};
use crate::policy::{DecisionKind, Policy, layer_index};
use qload_quant_core::bitnet::act::ActConfig;

/// The default bound on a load's transient memory (conversion scratch).
pub const DEFAULT_BUDGET: u64 = 256 << 20;

/// A progress event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// Loading starts: how many tensors and bytes will be processed.
    Started {
        /// Tensors to load.
        tensors: usize,
        /// Their bytes as stored.
        bytes: u64,
    },
    /// One tensor starts.
    TensorStarted {
        /// Its position in the load order.
        index: usize,
        /// Its (possibly renamed) name.
        name: &'a str,
        /// Its bytes as stored.
        bytes: u64,
    },
    /// Bytes processed so far, while a large tensor converts (about every 100 ms).
    Bytes {
        /// Bytes of the load processed so far (the tensor's share by its rows done).
        bytes_done: u64,
    },
    /// One tensor is done.
    TensorFinished {
        /// Its position in the load order.
        index: usize,
        /// Its (possibly renamed) name.
        name: &'a str,
        /// Bytes processed so far.
        bytes_done: u64,
    },
}

/// What a progress callback wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Continue,
    /// Stop; `load` returns [`Error::Cancelled`].
    Cancel,
}

type Progress<'a> = Box<dyn FnMut(&Event<'_>) -> Control + 'a>;

/// Builds a load.
pub struct Loader<'a> {
    path: PathBuf,
    opened: Option<WeightSource>,
    open: OpenOptions,
    filter: Filter,
    rename: Option<(Option<Family>, Direction)>,
    expected: Option<Vec<String>>,
    progress: Option<Progress<'a>>,
    policy: Policy,
    budget: u64,
    measure: bool,
    threads: Option<usize>,
    prequant: Requested,
    cache_dir: Option<PathBuf>,
    imatrix: Option<Arc<crate::imatrix::Imatrix>>,
    expect_arch: bool,
    placement: Option<(Box<dyn qload_placement::Strategy>, qload_placement::Inventory)>,
    device_fallback: Option<DType>,
    fallbacks: HashMap<String, (DType, String)>,
    activations: Option<ActConfig>,
    repack: bool,
}

impl std::fmt::Debug for Loader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("path", &self.path)
            .field("filter", &self.filter)
            .field("rename", &self.rename)
            .field("expected", &self.expected.as_ref().map(Vec::len))
            .field("policy", &self.policy)
            .field("budget", &self.budget)
            .field("measure", &self.measure)
            .finish_non_exhaustive()
    }
}

impl<'a> Loader<'a> {
    /// A load of `path`: a file, a split GGUF, a shard index or a directory.
    pub fn new(path: impl AsRef<Path>) -> Loader<'a> {
        Loader {
            path: path.as_ref().to_path_buf(),
            opened: None,
            open: OpenOptions::default(),
            filter: Filter::all(),
            rename: None,
            expected: None,
            progress: None,
            policy: Policy::Keep,
            budget: DEFAULT_BUDGET,
            measure: false,
            threads: None,
            prequant: Requested::default(),
            cache_dir: None,
            imatrix: None,
            expect_arch: false,
            placement: None,
            device_fallback: None,
            fallbacks: HashMap::new(),
            activations: None,
            repack: false,
        }
    }

    /// A load of an already opened source (e.g. `qload_formats::open_bytes` of an
    /// in-memory file); configs beside a path are not looked for.
    pub fn from_source(source: WeightSource) -> Loader<'a> {
        let mut l = Loader::new("");
        l.opened = Some(source);
        l
    }

    /// What each tensor's type becomes (default: [`Policy::Keep`]).
    pub fn quantize(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Bound on transient memory (conversion scratch over all threads), in bytes;
    /// default [`DEFAULT_BUDGET`]. At least one row per thread is always used.
    pub fn budget(mut self, bytes: u64) -> Self {
        self.budget = bytes;
        self
    }

    /// Worker threads for conversions (`None`: rayon's global pool, one per core).
    pub fn threads(mut self, threads: Option<usize>) -> Self {
        self.threads = threads;
        self
    }

    /// Measure each converted tensor's error against its source values (MSE,
    /// relative RMSE, max |error|, cosine); costs one more dequantization.
    pub fn measure_error(mut self, on: bool) -> Self {
        self.measure = on;
        self
    }

    /// Settings for pre-quantized checkpoints that save none of their own (e.g. an MLX
    /// file without its `config.json`). Saved settings win, with a warning in the notes.
    pub fn prequant(mut self, requested: Requested) -> Self {
        self.prequant = requested;
        self
    }

    /// A cache directory for converted loads: the first load writes the result there
    /// as a GGUF (atomically), later loads with the same source and settings map it
    /// instead of converting (see [`crate::cache`]). Loads that keep every tensor as
    /// stored are not cached (they map the source already).
    pub fn cache_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cache_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// An importance matrix for quantizing (llama.cpp's `llama-imatrix` output): each
    /// converted tensor with an entry (by stored name, then by its loaded name) is
    /// quantized with it, as `llama-quantize --imatrix` does.
    pub fn imatrix(mut self, imatrix: crate::imatrix::Imatrix) -> Self {
        self.imatrix = Some(Arc::new(imatrix));
        self
    }

    /// Options for opening the files (map or read, GGUF id numbering).
    pub fn open_options(mut self, open: OpenOptions) -> Self {
        self.open = open;
        self
    }

    /// Loads only the tensors `filter` keeps (matched against stored names).
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = filter;
        self
    }

    /// Renames tensors between GGUF and Hugging Face conventions; names without a
    /// rule keep their stored name and are listed in the report.
    pub fn rename(mut self, family: Family, direction: Direction) -> Self {
        self.rename = Some((Some(family), direction));
        self
    }

    /// Like [`Loader::rename`], with the family taken from the checkpoint: GGUF's
    /// `general.architecture`, or `model_type` in a `config.json` beside the weights.
    pub fn rename_detected(mut self, direction: Direction) -> Self {
        self.rename = Some((None, direction));
        self
    }

    /// Names that must all be present after filtering and renaming; any missing one
    /// makes `load` fail with [`Error::MissingTensors`].
    pub fn expect(mut self, names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.expected = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Requires every weight the checkpoint's architecture implies ([`crate::names::template`]
    /// for its family and layer count, read from GGUF metadata or `config.json`, in the
    /// names the load produces); any missing one fails the load with
    /// [`Error::MissingTensors`]. Combines with [`Loader::expect`].
    pub fn expect_architecture(mut self) -> Self {
        self.expect_arch = true;
        self
    }

    /// Places the loaded tensors on devices: `strategy` plans over `inventory` with each
    /// tensor's final (converted) size, before any data is read; tensors planned on a GPU
    /// are uploaded right after their conversion through two 4 MiB pinned staging
    /// buffers, and their host copy is dropped. Without the `gpu` feature or a CUDA
    /// driver, a plan that uses a GPU fails the load with the placement error.
    pub fn placement(
        mut self,
        strategy: impl qload_placement::Strategy + 'static,
        inventory: qload_placement::Inventory,
    ) -> Self {
        self.placement = Some((Box::new(strategy), inventory));
        self
    }

    /// What to do with a pre-quantized weight kept native that the plan puts on a device
    /// without kernels for its scheme (today: any GPU). `None` (the default): the load
    /// fails before any data is read, naming the scheme and device. `Some(t)`: it is
    /// converted to `t` instead (`f16` to dequantize, or a ggml type to transcode), and
    /// the report says so per tensor and in a note.
    pub fn device_fallback(mut self, to: Option<DType>) -> Self {
        self.device_fallback = to;
        self
    }

    /// How the loaded model's ternary (I2_S) weights quantize activations in
    /// [`crate::Weight::matvec`]; overrides a quantization config's `[activations]`
    /// (default: BitNet's symmetric per-token absmax).
    pub fn activations(mut self, config: ActConfig) -> Self {
        self.activations = Some(config);
        self
    }

    /// Calls `f` with progress events; returning [`Control::Cancel`] stops the load.
    pub fn progress(mut self, f: impl FnMut(&Event<'_>) -> Control + 'a) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// Keeps every Q4_0 matrix on the CPU (eight rows or more) with each group of
    /// eight rows interleaved ([`qload_quant_core::repack::Q4_0x8`]), and every I2_S
    /// matrix (four rows or more, rows of whole 128-element blocks) with each group of
    /// four ([`qload_quant_core::repack::I2sX4`]), where this CPU has the SIMD kernels
    /// for them (AVX2; elsewhere a report note says the matrices stayed row-major), so
    /// that [`crate::Weight::matvec`] runs the interleaved kernels (Q4_0: about twice
    /// the speed of row-major, and the scalar dot product's bits; I2_S: one stream per
    /// group, up to ~1.8× from DRAM, the same bits as row-major). The copy costs the
    /// matrix's size in memory, the mapped bytes it came from stay in the page cache
    /// (clean, so the kernel can drop them), and [`LoadedModel::bytes`] of such a
    /// tensor rebuilds the plain bytes on first use and keeps them. Default off.
    pub fn repack(mut self, on: bool) -> Self {
        self.repack = on;
        self
    }

    /// Runs the load.
    pub fn load(self) -> Result<(LoadedModel, LoadReport)> {
        let (repack, threads) = (self.repack, self.threads);
        let (mut model, mut report) = self.load_unpacked()?;
        if repack {
            let t0 = Instant::now();
            let kinds = [
                (DType::Q4_0, qload_quant_core::repack::q4_0x8_is_fast(), "eight"),
                (DType::I2S, qload_quant_core::repack::i2s_x4_is_fast(), "four"),
            ];
            // Per type: how many, their bytes, the seconds it took.
            let run = |model: &mut LoadedModel| {
                kinds.map(|(d, fast, _)| {
                    let t = Instant::now();
                    let (n, bytes) = if fast { model.interleave(d) } else { (0, 0) };
                    (n, bytes, t.elapsed().as_secs_f64())
                })
            };
            let done = match threads {
                Some(t) => rayon::ThreadPoolBuilder::new()
                    .num_threads(t.max(1))
                    .build()
                    .map_err(|e| Error::Threads { reason: e.to_string() })?
                    .install(|| run(&mut model)),
                None => run(&mut model),
            };
            for ((dtype, fast, rows), (n, bytes, secs)) in kinds.into_iter().zip(done) {
                report.notes.push(if fast {
                    format!(
                        "repack: {n} {dtype} matrices ({bytes} bytes) interleaved {rows} rows at a time for matvec in {secs:.3} s"
                    )
                } else {
                    format!(
                        "repack: no interleaved {dtype} kernel for this CPU ({} kernels); matrices kept row-major",
                        qload_quant_core::arch::kernel_family()
                    )
                });
            }
            report.wall_time_s += t0.elapsed().as_secs_f64();
            report.peak_rss_bytes = peak_rss_bytes();
        }
        Ok((model, report))
    }

    fn load_unpacked(mut self) -> Result<(LoadedModel, LoadReport)> {
        let t0 = Instant::now();
        let _span = tracing::info_span!("qload_load", path = %self.path.display()).entered();
        let source = Arc::new(match self.opened.take() {
            Some(s) => s,
            None => qload_formats::open_with(&self.path, &self.open)?,
        });
        let Some(dir) = self.cache_dir.clone().filter(|_| self.policy != Policy::Keep) else {
            return self.load_from(source, t0);
        };
        let settings = format!(
            "policy {:?}\nfilter {:?}\nrename {:?}\nprequant {:?}\nexpected {:?}\nids {:?}\nimatrix {}\n",
            self.policy,
            self.filter,
            self.rename,
            self.prequant,
            self.expected,
            self.open.ggml_flavor,
            self.imatrix.as_ref().map_or(String::new(), |m| m.fingerprint())
        );
        let key = crate::cache::key(&source, &self.path, &settings)?;
        let mut bad = None;
        match crate::cache::lookup(&dir, &key) {
            crate::cache::Lookup::Hit(found) => {
                let (entry, mut report) = *found;
                let entry = Arc::new(entry);
                let mut tensors = Vec::with_capacity(entry.tensors().len());
                let mut by_name = HashMap::with_capacity(entry.tensors().len());
                for (i, t) in entry.tensors().iter().enumerate() {
                    by_name.insert(t.name.clone(), i);
                    tensors.push(LoadedTensor {
                        name: t.name.clone(),
                        dtype: t.dtype,
                        shape: t.shape.clone(),
                        scheme: None,
                        device: qload_placement::Device::Cpu,
                        storage: Storage::Mapped(i),
                        ternary_codes: OnceLock::new(),
                    });
                }
                if let Some(f) = self.progress.as_mut() {
                    let _ = f(&Event::Started {
                        tensors: tensors.len(),
                        bytes: 0,
                    });
                }
                let path = crate::cache::entry_path(&dir, &key);
                report.cache = Some(crate::cache::CacheInfo {
                    path: path.display().to_string(),
                    outcome: "hit".into(),
                });
                report.wall_time_s = t0.elapsed().as_secs_f64();
                report.peak_rss_bytes = peak_rss_bytes();
                return Ok((
                    LoadedModel {
                        source: entry,
                        detection: Detection::default(),
                        tensors,
                        by_name,
                        activations: self.activations.or(self.policy.activations()).unwrap_or_default(),
                    },
                    report,
                ));
            }
            crate::cache::Lookup::Bad(reason) => bad = Some(reason),
            crate::cache::Lookup::Miss => {}
        }
        let (model, mut report) = self.load_from(source, t0)?;
        report.notes.extend(bad);
        let path = crate::cache::entry_path(&dir, &key);
        // The report stored in the entry is the one a hit will return (without the cache field).
        let outcome = match crate::cache::store(&dir, &key, &model, &report) {
            Ok(_) => "stored",
            Err(e) => {
                report.notes.push(format!("not cached: {e}"));
                "not_stored"
            }
        };
        report.cache = Some(crate::cache::CacheInfo {
            path: path.display().to_string(),
            outcome: outcome.into(),
        });
        Ok((model, report))
    }

    fn load_from(mut self, source: Arc<WeightSource>, t0: Instant) -> Result<(LoadedModel, LoadReport)> {
        let detection = match source.format() {
            qload_formats::Format::Gguf => Detection::default(),
            _ if self.path.as_os_str().is_empty() => {
                qload_prequant::detect(&source, qload_prequant::SavedConfig::default(), &self.prequant)?
            }
            _ => qload_prequant::detect_at(&self.path, &source, &self.prequant)?,
        };
        // Logical entries in file order: plain tensors, and each pre-quantized weight at
        // the place of its data part (its other keys are consumed by it).
        let all: Vec<Entry<'_>> = source
            .tensors()
            .iter()
            .enumerate()
            .filter_map(|(i, t)| match detection.owner.get(i).copied().flatten() {
                None => Some(Entry::Plain(i, t)),
                Some(w) if detection.is_data_part(&source, i) => Some(Entry::Quantized(w)),
                Some(_) => None,
            })
            .collect();
        let entry_name = |e: &Entry<'_>| -> String {
            match e {
                Entry::Plain(_, t) => t.name.clone(),
                Entry::Quantized(w) => detection.weights[*w].name.clone(),
            }
        };
        let chosen: Vec<&Entry<'_>> = all.iter().filter(|e| self.filter.matches(&entry_name(e))).collect();
        let mut report = LoadReport {
            files: source.files().iter().map(|f| f.path().display().to_string()).collect(),
            format: source.format().name().to_string(),
            tensors_in_source: all.len(),
            tensors_filtered_out: all.len() - chosen.len(),
            notes: source.notes().to_vec(),
            ..LoadReport::default()
        };
        report.notes.extend(detection.warnings.iter().cloned());
        let names: Vec<String> = all.iter().map(entry_name).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        for p in self.filter.unused_includes(&names) {
            report.notes.push(format!("include pattern {p:?} matched no tensor"));
        }
        let rename = match self.rename {
            None => None,
            Some((Some(f), d)) => Some((f, d)),
            Some((None, d)) => Some((detect_family(&source, &self.path)?, d)),
        };
        let entry_bytes = |e: &Entry<'_>| -> u64 {
            match e {
                Entry::Plain(_, t) => t.byte_len(),
                Entry::Quantized(w) => detection.weights[*w].stored_bytes(&source),
            }
        };
        let total_bytes: u64 = chosen.iter().map(|e| entry_bytes(e)).sum();
        if let Some(f) = self.progress.as_mut() {
            let _ = f(&Event::Started {
                tensors: chosen.len(),
                bytes: total_bytes,
            });
        }
        let mut tensors = Vec::with_capacity(chosen.len());
        let mut by_name = HashMap::with_capacity(chosen.len());
        let mut bytes_done = 0u64;
        let n_layers = names.iter().filter_map(|n| layer_index(n)).max().map_or(0, |m| m + 1);
        report.policy = self.policy.name();
        report.budget_bytes = self.budget;
        let pool = match self.threads {
            Some(n) => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n.max(1))
                    .build()
                    .map_err(|e| Error::Threads { reason: e.to_string() })?,
            ),
            None => None,
        };
        // Every tensor's type, decided once from names, shapes and stored types.
        let decisions: Vec<crate::policy::Decision> = chosen
            .iter()
            .map(|e| match e {
                Entry::Plain(_, t) => self.policy.decide(&t.name, &t.shape, t.dtype, n_layers),
                Entry::Quantized(w) => {
                    let w = &detection.weights[*w];
                    let label = w.scheme.label();
                    self.policy
                        .decide_prequant(&w.name, &w.shape, w.scheme.output_dtype(), &label, n_layers)
                }
            })
            .collect();
        let plan = match self.placement.take() {
            None => None,
            Some((strategy, inventory)) => {
                let specs: Vec<qload_placement::TensorSpec> = chosen
                    .iter()
                    .zip(&decisions)
                    .map(|(e, d)| {
                        let (name, after) = match e {
                            Entry::Plain(_, t) => (t.name.clone(), d.size_after(&t.shape, t.byte_len())),
                            Entry::Quantized(w) => {
                                let w = &detection.weights[*w];
                                (w.name.clone(), d.size_after(&w.shape, w.stored_bytes(&source)))
                            }
                        };
                        qload_placement::TensorSpec::classify(name, after)
                    })
                    .collect();
                let mut plan = strategy.plan(&specs, &inventory)?;
                // Native pre-quantized weights on a device without kernels for them: fail
                // now, or convert them (and plan again with their converted sizes).
                let mut specs = specs;
                let mut replan = false;
                for ((spec, e), d) in specs.iter_mut().zip(&chosen).zip(&decisions) {
                    let Entry::Quantized(widx) = e else { continue };
                    let w = &detection.weights[*widx];
                    let Some(device) = plan.device_of(&w.name).filter(|d| *d != qload_placement::Device::Cpu) else {
                        continue;
                    };
                    if d.kind != DecisionKind::Keep {
                        continue;
                    }
                    let Err(unsupported) =
                        qload_prequant::supported(&w.scheme, &device.to_string(), qload_prequant::Op::NativeMatvec)
                    else {
                        continue;
                    };
                    let Some(to) = self.device_fallback else {
                        return Err(unsupported.into());
                    };
                    let why = format!("{unsupported}; converted to {to} instead (device fallback)");
                    report.notes.push(format!("{}: {why}", w.name));
                    self.fallbacks.insert(w.name.clone(), (to, why));
                    spec.bytes = to.nbytes(&w.shape).unwrap_or(spec.bytes);
                    replan = true;
                }
                if replan {
                    plan = strategy.plan(&specs, &inventory)?;
                }
                for u in &plan.devices {
                    if u.bytes_used > 0 {
                        report.devices.push((u.device.to_string(), u.bytes_used));
                    }
                }
                report
                    .notes
                    .extend(plan.decisions.iter().map(|d| format!("placement: {d}")));
                Some(plan)
            }
        };
        let mut gpus = Gpus::default();
        let mut imatrix_used = 0usize;
        let mut imatrix_missing: Vec<String> = Vec::new();
        for (k, entry) in chosen.iter().enumerate() {
            let stored_name = entry_name(entry);
            if let Some(f) = self.progress.as_mut()
                && f(&Event::TensorStarted {
                    index: k,
                    name: &stored_name,
                    bytes: entry_bytes(entry),
                }) == Control::Cancel
            {
                return Err(Error::Cancelled {
                    done: k,
                    total: chosen.len(),
                });
            }
            let mut name = stored_name.clone();
            let mut rope_permuted = false;
            if let Some((family, direction)) = rename {
                match map_name(family, &stored_name, direction) {
                    Some(m) => {
                        name = m.name;
                        rope_permuted = m.rope_permuted;
                    }
                    None => report.unmatched_names.push(stored_name.clone()),
                }
            }
            let (loaded, stat) = match entry {
                Entry::Quantized(widx) => {
                    let w = &detection.weights[*widx];
                    let weight = w.tensor(&source)?;
                    let stored = w.stored_bytes(&source);
                    self.load_prequant(
                        (*widx, w),
                        &weight,
                        stored,
                        (name, rope_permuted),
                        decisions[k].clone(),
                        pool.as_ref(),
                        (k, chosen.len(), bytes_done, stored),
                    )?
                }
                Entry::Plain(index, info) => {
                    let (index, info) = (*index, *info);
                    let decision = decisions[k].clone();
                    tracing::debug!(tensor = %info.name, from = %info.dtype, to = %decision.target, reason = %decision.reason, "decided");
                    let mut error = None;
                    let mut used_imatrix = false;
                    let (storage, dtype_after, action) = if decision.kind == DecisionKind::Keep {
                        if info.is_contiguous() {
                            (Storage::Mapped(index), info.dtype, Action::Mapped)
                        } else {
                            (
                                Storage::Owned(source.materialize(info)?.into_owned()),
                                info.dtype,
                                Action::Gathered,
                            )
                        }
                    } else {
                        let row = *info.shape.last().unwrap_or(&1) as usize;
                        let file = &source.files()[info.file];
                        let base = info.bytes.start;
                        let contiguous = info.is_contiguous();
                        let release = move |a: usize, b: usize| {
                            if contiguous {
                                file.release(base + a as u64..base + b as u64);
                            }
                        };
                        let _convert =
                            tracing::info_span!("convert", tensor = %info.name, from = %info.dtype, to = %decision.target)
                                .entered();
                        let src = source.materialize(info)?;
                        let imatrix = self.imatrix.clone();
                        let imat = imatrix
                            .as_ref()
                            .and_then(|m| m.get(&info.name).or_else(|| m.get(&name)))
                            .filter(|_| decision.target.is_quantized() && decision.ternary.is_none());
                        used_imatrix = imat.is_some();
                        if imat.is_some() {
                            imatrix_used += 1;
                        } else if imatrix.is_some() && decision.target.is_quantized() {
                            imatrix_missing.push(info.name.clone());
                        }
                        let job = Conversion {
                            from: info.dtype,
                            to: decision.target,
                            row,
                            budget: self.budget,
                            measure: self.measure,
                            imatrix: imat,
                            ternary: decision.ternary.map(|t| t.config()),
                        };
                        let pool = pool.as_ref();
                        let (out, e) = ticking(
                            &mut self.progress,
                            (k, chosen.len(), bytes_done, info.byte_len()),
                            |ticker| {
                                let run = || convert(&info.name, &src, job, &release, ticker);
                                match pool {
                                    Some(p) => p.install(run),
                                    None => run(),
                                }
                            },
                        )?;
                        error = e;
                        (Storage::Owned(out), decision.target, Action::Converted)
                    };
                    let stored = match &storage {
                        Storage::Owned(v) => v.len() as u64,
                        _ => info.byte_len(),
                    };
                    let stat = TensorStat {
                        name: name.clone(),
                        source_name: info.name.clone(),
                        parameters: info.numel(),
                        dtype_before: info.dtype,
                        dtype_after,
                        bytes_before: info.byte_len(),
                        bytes_after: stored,
                        action,
                        decision: decision.kind,
                        reason: decision.reason,
                        error,
                        rope_permuted,
                        scheme: None,
                        imatrix: used_imatrix,
                    };
                    let loaded = LoadedTensor {
                        name,
                        dtype: dtype_after,
                        shape: info.shape.clone(),
                        scheme: None,
                        device: qload_placement::Device::Cpu,
                        storage,
                        ternary_codes: OnceLock::new(),
                    };
                    (loaded, stat)
                }
            };
            let mut loaded = loaded;
            report.per_tensor.push(stat);
            if let Some(plan) = &plan {
                gpus.place(&mut loaded, plan.device_of(&stored_name), &source, &detection)?;
            }
            if by_name.insert(loaded.name.clone(), tensors.len()).is_some() {
                return Err(Error::DuplicateName { name: loaded.name });
            }
            tensors.push(loaded);
            bytes_done += entry_bytes(entry);
            if let Some(f) = self.progress.as_mut() {
                let ev = Event::TensorFinished {
                    index: k,
                    name: &tensors[tensors.len() - 1].name,
                    bytes_done,
                };
                if f(&ev) == Control::Cancel {
                    return Err(Error::Cancelled {
                        done: k + 1,
                        total: chosen.len(),
                    });
                }
            }
        }
        if let Some(m) = &self.imatrix {
            report.notes.push(format!(
                "importance matrix ({}, {} entries{}): used for {imatrix_used} tensor(s)",
                m.format,
                m.len(),
                if m.datasets.is_empty() {
                    String::new()
                } else {
                    format!(", computed on {}", m.datasets.join(", "))
                }
            ));
            if !imatrix_missing.is_empty() {
                report.notes.push(format!(
                    "{} quantized tensor(s) had no importance-matrix entry, e.g. {:?}",
                    imatrix_missing.len(),
                    &imatrix_missing[..imatrix_missing.len().min(3)]
                ));
            }
        }
        if self.expect_arch {
            let family = detect_family(&source, &self.path)?;
            let n_layers = layer_count(&source, &self.path).ok_or_else(|| Error::UnknownFamily {
                architecture: format!("{family:?} (no block_count in the GGUF, no num_hidden_layers in config.json)"),
                known: "a checkpoint that states its layer count".into(),
            })?;
            let stored_gguf = source.format() == qload_formats::Format::Gguf;
            let convention = match (rename.map(|(_, d)| d), stored_gguf) {
                (Some(Direction::GgufToHf), _) | (None, false) => crate::names::Convention::HuggingFace,
                (Some(Direction::HfToGguf), _) | (None, true) => crate::names::Convention::Gguf,
            };
            let mut all = self.expected.take().unwrap_or_default();
            all.extend(crate::names::template(family, n_layers, convention));
            self.expected = Some(all);
        }
        if let Some(expected) = &self.expected {
            let missing: Vec<String> = expected.iter().filter(|n| !by_name.contains_key(*n)).cloned().collect();
            report.tensors_expected = Some(expected.len());
            if !missing.is_empty() {
                return Err(Error::MissingTensors {
                    count: missing.len(),
                    expected: expected.len(),
                    first: missing.into_iter().take(10).collect(),
                });
            }
        }
        report.tensors_loaded = tensors.len();
        report.total_parameters = report.per_tensor.iter().map(|t| t.parameters).sum();
        report.original_bytes = report.per_tensor.iter().map(|t| t.bytes_before).sum();
        report.stored_bytes = report.per_tensor.iter().map(|t| t.bytes_after).sum();
        report.compression_ratio = if report.stored_bytes == 0 {
            1.0
        } else {
            report.original_bytes as f64 / report.stored_bytes as f64
        };
        let measured: Vec<&ErrorStats> = report.per_tensor.iter().filter_map(|t| t.error.as_ref()).collect();
        if !measured.is_empty() {
            report.mean_rel_rmse = Some(measured.iter().map(|e| e.rel_rmse).sum::<f64>() / measured.len() as f64);
            report.max_abs_error = Some(measured.iter().map(|e| e.max_abs).fold(0.0, f64::max));
        }
        report.wall_time_s = t0.elapsed().as_secs_f64();
        report.peak_rss_bytes = peak_rss_bytes();
        Ok((
            LoadedModel {
                source,
                detection,
                tensors,
                by_name,
                activations: self.activations.or(self.policy.activations()).unwrap_or_default(),
            },
            report,
        ))
    }

    /// One pre-quantized weight: kept native (its parts stay views of the map) or
    /// decoded by its scheme and converted to the policy's type.
    #[allow(clippy::too_many_arguments)]
    fn load_prequant(
        &mut self,
        (widx, w): (usize, &qload_prequant::QuantizedWeight),
        weight: &PrequantTensor<'_>,
        stored: u64,
        (name, rope_permuted): (String, bool),
        decided: crate::policy::Decision,
        pool: Option<&rayon::ThreadPool>,
        at: (usize, usize, u64, u64),
    ) -> Result<(LoadedTensor, TensorStat)> {
        let label = w.scheme.label();
        let out = w.scheme.output_dtype();
        let decision = match self.fallbacks.get(&w.name) {
            Some((to, why)) => crate::policy::Decision {
                target: *to,
                kind: DecisionKind::Fallback,
                reason: format!("from {label}: {why}"),
                ternary: None,
            },
            None => decided,
        };
        let mut decision = decision;
        if matches!(w.scheme, qload_prequant::Scheme::Bitnet { .. }) && decision.ternary.take().is_some() {
            // Absmean over values that are already ternary would rescale them; the codes
            // and scale are carried over instead (I2_S), or ggml's TQ quantizer keeps them.
            decision.reason = format!("{}; already ternary: codes and scale carried over", decision.reason);
        }
        tracing::debug!(tensor = %w.name, scheme = %label, to = %decision.target, reason = %decision.reason, "decided");
        let (storage, dtype_after, action, error) = if decision.kind == DecisionKind::Keep {
            (Storage::Prequant(widx), out, Action::Native, None)
        } else {
            let _convert =
                tracing::info_span!("convert", tensor = %w.name, from = %label, to = %decision.target).entered();
            let (budget, measure, target) = (self.budget, self.measure, decision.target);
            let ternary = decision.ternary.map(|t| t.config());
            let (bytes, e) = ticking(&mut self.progress, at, |ticker| {
                let run = || convert_prequant(&w.name, weight, target, ternary, budget, measure, ticker);
                match pool {
                    Some(p) => p.install(run),
                    None => run(),
                }
            })?;
            (Storage::Owned(bytes), decision.target, Action::Converted, e)
        };
        let bytes_after = match &storage {
            Storage::Owned(v) => v.len() as u64,
            _ => stored,
        };
        let scheme = (decision.kind == DecisionKind::Keep).then_some(w.scheme);
        let stat = TensorStat {
            name: name.clone(),
            source_name: w.name.clone(),
            parameters: w.numel(),
            dtype_before: out,
            dtype_after,
            bytes_before: stored,
            bytes_after,
            action,
            decision: decision.kind,
            reason: decision.reason,
            error,
            rope_permuted,
            scheme: Some(label),
            imatrix: false,
        };
        let loaded = LoadedTensor {
            name,
            dtype: dtype_after,
            shape: w.shape.clone(),
            scheme,
            device: qload_placement::Device::Cpu,
            storage,
            ternary_codes: OnceLock::new(),
        };
        Ok((loaded, stat))
    }
}

/// Runs one tensor's conversion `work`; with a progress callback, on a scoped thread
/// while this one reports [`Event::Bytes`] every 100 ms and passes a cancellation on.
/// `at` = (tensor index, tensors in the load, bytes done before it, its bytes).
fn ticking<T: Send>(
    progress: &mut Option<Progress<'_>>,
    at: (usize, usize, u64, u64),
    work: impl FnOnce(&crate::convert::Ticker) -> Result<T> + Send,
) -> Result<T> {
    let ticker = crate::convert::Ticker::default();
    let Some(f) = progress.as_mut() else {
        return work(&ticker);
    };
    let (index, total, base, bytes) = at;
    let result = std::thread::scope(|s| {
        let me = std::thread::current();
        let ticker = &ticker;
        let handle = s.spawn(move || {
            let r = work(ticker);
            me.unpark();
            r
        });
        while !handle.is_finished() {
            std::thread::park_timeout(std::time::Duration::from_millis(100));
            let done = base + (bytes as f64 * ticker.fraction()) as u64;
            if f(&Event::Bytes { bytes_done: done }) == Control::Cancel {
                ticker.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        handle.join()
    });
    let cancelled = ticker.cancel.load(std::sync::atomic::Ordering::Relaxed);
    match result {
        Ok(r) if !cancelled => r,
        Ok(_) => Err(Error::Cancelled { done: index, total }),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// One logical entry of a source: a plain tensor, or a pre-quantized weight.
enum Entry<'s> {
    Plain(usize, &'s TensorInfo),
    Quantized(usize),
}

/// The model family a checkpoint declares: GGUF `general.architecture`, or `model_type`
/// in a `config.json` in the checkpoint's directory.
fn detect_family(source: &WeightSource, path: &Path) -> Result<Family> {
    if let qload_formats::Details::Gguf(h) = source.details()
        && let Some(arch) = h.first().and_then(|h| h.architecture())
    {
        return Family::from_architecture(arch);
    }
    let config = config_beside(path);
    let model_type = config
        .as_ref()
        .and_then(|c| std::fs::read(c).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("model_type").and_then(|m| m.as_str()).map(String::from));
    match model_type {
        Some(t) => Family::from_architecture(&t),
        None => Err(Error::UnknownFamily {
            architecture: format!(
                "(none found: no GGUF architecture and no model_type in {})",
                config.map_or("a config.json (in-memory source)".into(), |c| c.display().to_string())
            ),
            known: "llama, mistral, gemma, gemma2, gemma3, qwen2, qwen3, phi3".into(),
        }),
    }
}

/// The number of repeating blocks: GGUF `{arch}.block_count`, or `num_hidden_layers` in a
/// `config.json` beside the weights.
fn layer_count(source: &WeightSource, path: &Path) -> Option<u32> {
    if let qload_formats::Details::Gguf(h) = source.details() {
        let h = h.first()?;
        let key = format!("{}.block_count", h.architecture()?);
        return h
            .metadata
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_u64())
            .and_then(|n| u32::try_from(n).ok());
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(config_beside(path)?).ok()?).ok()?;
    let v = v
        .get("text_config")
        .filter(|t| t.get("num_hidden_layers").is_some())
        .unwrap_or(&v);
    v.get("num_hidden_layers")?.as_u64().and_then(|n| u32::try_from(n).ok())
}

/// The `config.json` that belongs to a checkpoint at `path` (a directory or a file in
/// one); none for an in-memory source (empty path).
fn config_beside(path: &Path) -> Option<PathBuf> {
    if path.as_os_str().is_empty() {
        return None;
    }
    let dir = if path.is_dir() {
        path
    } else {
        path.parent().unwrap_or(Path::new("."))
    };
    Some(dir.join("config.json"))
}

/// Where a loaded tensor's bytes are.
#[derive(Debug)]
enum Storage {
    /// A view of the mapped file: index into the source's tensors.
    Mapped(usize),
    /// An owned buffer (gathered strided views).
    Owned(Vec<u8>),
    /// A pre-quantized weight kept native: index into the detection's weights (its
    /// parts are views of the map).
    Prequant(usize),
    /// A Q4_0 or I2_S matrix with its rows interleaved (`Loader::repack`); the plain
    /// bytes are rebuilt on first ask.
    Interleaved(Box<Interleaved>),
    /// Uploaded to a GPU.
    #[cfg(feature = "gpu")]
    Cuda(qload_placement::cuda::CudaBuffer),
}

/// An interleaved matrix and, once asked for, its plain bytes.
#[derive(Debug)]
struct Interleaved {
    matrix: Repacked,
    plain: std::sync::OnceLock<Vec<u8>>,
}

impl Interleaved {
    fn plain(&self) -> &[u8] {
        self.plain.get_or_init(|| match &self.matrix {
            Repacked::Q4_0x8(m) => m.unpack(),
            Repacked::I2sX4(m) => m.unpack(),
        })
    }
}

/// A matrix interleaved by `Loader::repack` for the matvec kernels.
#[derive(Debug)]
pub(crate) enum Repacked {
    /// Q4_0, eight rows at a time.
    Q4_0x8(qload_quant_core::repack::Q4_0x8),
    /// I2_S (x86 layout), four rows at a time.
    I2sX4(qload_quant_core::repack::I2sX4),
}

/// The GPUs a load uploads to, opened on first use, each with its staging buffers.
#[derive(Default)]
struct Gpus {
    #[cfg(feature = "gpu")]
    open: HashMap<u32, (qload_placement::cuda::CudaDevice, qload_placement::cuda::Stager)>,
}

/// Bytes of the staging buffers (two halves of this).
#[cfg(feature = "gpu")]
const STAGING_BYTES: usize = 8 << 20;

impl Gpus {
    /// Moves `t` to `device` (a no-op for the CPU): uploads its bytes and drops the host copy.
    fn place(
        &mut self,
        t: &mut LoadedTensor,
        device: Option<qload_placement::Device>,
        source: &WeightSource,
        detection: &Detection,
    ) -> Result<()> {
        let Some(device @ qload_placement::Device::Cuda(ordinal)) = device else {
            return Ok(());
        };
        let bytes: &[u8] = match &t.storage {
            Storage::Mapped(i) => source.tensor_bytes(&source.tensors()[*i])?,
            Storage::Owned(v) => v,
            Storage::Interleaved(b) => b.plain(),
            Storage::Prequant(w) => {
                let scheme = detection.weights[*w].scheme;
                qload_prequant::supported(&scheme, &device.to_string(), qload_prequant::Op::NativeMatvec)?;
                &[]
            }
            #[cfg(feature = "gpu")]
            Storage::Cuda(_) => return Ok(()),
        };
        #[cfg(feature = "gpu")]
        {
            use std::collections::hash_map::Entry as E;
            let (dev, stager) = match self.open.entry(ordinal) {
                E::Occupied(o) => o.into_mut(),
                E::Vacant(v) => {
                    let dev = qload_placement::cuda::CudaDevice::open(ordinal)?;
                    let stager = dev.stager(STAGING_BYTES)?;
                    v.insert((dev, stager))
                }
            };
            let buffer = dev.upload(stager, bytes)?;
            t.storage = Storage::Cuda(buffer);
            t.device = device;
            Ok(())
        }
        #[cfg(not(feature = "gpu"))]
        {
            let _ = (bytes, ordinal, &self);
            Err(qload_placement::PlacementError::GpuNotCompiled { device }.into())
        }
    }
}

/// One loaded tensor.
#[derive(Debug)]
pub struct LoadedTensor {
    /// Its name (renamed if asked).
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Row-major shape.
    pub shape: Vec<u64>,
    /// For a pre-quantized weight kept native: how it is stored (then `dtype` is the
    /// type its dequantization yields; see [`LoadedModel::prequant`]).
    pub scheme: Option<Scheme>,
    /// Where its bytes are.
    pub device: qload_placement::Device,
    storage: Storage,
    /// For a row-major I2_S tensor: whether no code is 3
    /// ([`qload_quant_core::bitnet::i2s::codes_are_ternary`]), checked on its first
    /// use as a [`crate::Weight`] and kept (the bytes never change), so that its
    /// matvecs take the faster ternary kernel.
    pub(crate) ternary_codes: OnceLock<bool>,
}

impl LoadedTensor {
    /// Whether the bytes are a zero-copy view of the mapped file.
    pub fn is_mapped(&self) -> bool {
        matches!(self.storage, Storage::Mapped(_))
    }
}

/// A loaded model: tensors by name, owning (a reference to) the mapped files.
#[derive(Debug)]
pub struct LoadedModel {
    source: Arc<WeightSource>,
    detection: Detection,
    tensors: Vec<LoadedTensor>,
    by_name: HashMap<String, usize>,
    activations: ActConfig,
}

impl LoadedModel {
    /// How [`crate::Weight::matvec`] quantizes activations for ternary (I2_S) weights:
    /// BitNet's symmetric per-token absmax unless the loader or the quantization
    /// config (`[activations]`) said otherwise.
    pub fn activations(&self) -> ActConfig {
        self.activations
    }

    /// Changes [`LoadedModel::activations`].
    pub fn set_activations(&mut self, config: ActConfig) {
        self.activations = config;
    }

    /// Every tensor, in load order.
    pub fn tensors(&self) -> &[LoadedTensor] {
        &self.tensors
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&LoadedTensor> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// A tensor's bytes, densely packed in row-major order. Empty for a pre-quantized
    /// weight kept native (its bytes are several parts: see [`LoadedModel::prequant`]).
    pub fn bytes<'m>(&'m self, t: &'m LoadedTensor) -> &'m [u8] {
        match &t.storage {
            Storage::Owned(v) => v,
            Storage::Interleaved(b) => b.plain(),
            Storage::Prequant(_) => &[],
            #[cfg(feature = "gpu")]
            Storage::Cuda(_) => &[],
            Storage::Mapped(i) => {
                // Ranges were validated when the source was opened.
                self.source.tensor_bytes(&self.source.tensors()[*i]).unwrap_or(&[])
            }
        }
    }

    /// The interleaved form of a matrix, when the load built one.
    pub(crate) fn interleaved<'m>(&'m self, t: &'m LoadedTensor) -> Option<&'m Repacked> {
        match &t.storage {
            Storage::Interleaved(b) => Some(&b.matrix),
            _ => None,
        }
    }

    /// Interleaves every CPU matrix of type `dtype` (Q4_0: eight rows or more; I2_S:
    /// four or more, rows of whole 128-element blocks), mapped or owned; returns how
    /// many and their bytes.
    fn interleave(&mut self, dtype: DType) -> (usize, u64) {
        let (mut n, mut bytes) = (0, 0u64);
        for i in 0..self.tensors.len() {
            let t = &self.tensors[i];
            let cols = t.shape.last().copied().unwrap_or(1) as usize;
            let rows = t.shape.iter().rev().skip(1).product::<u64>() as usize;
            let min_rows = if dtype == DType::Q4_0 { 8 } else { 4 };
            if t.dtype != dtype
                || t.device != qload_placement::Device::Cpu
                || rows < min_rows
                || !matches!(t.storage, Storage::Mapped(_) | Storage::Owned(_))
            {
                continue;
            }
            // Shapes and sizes were checked when the tensor was loaded; a tensor the
            // layout would refuse simply stays row-major.
            let matrix = match dtype {
                DType::Q4_0 => qload_quant_core::repack::Q4_0x8::new(self.bytes(t), rows, cols)
                    .ok()
                    .map(Repacked::Q4_0x8),
                DType::I2S => qload_quant_core::repack::I2sX4::new(self.bytes(t), rows, cols)
                    .ok()
                    .map(Repacked::I2sX4),
                _ => None,
            };
            let Some(matrix) = matrix else {
                continue;
            };
            bytes += self.bytes(t).len() as u64;
            n += 1;
            self.tensors[i].storage = Storage::Interleaved(Box::new(Interleaved {
                matrix,
                plain: std::sync::OnceLock::new(),
            }));
        }
        (n, bytes)
    }

    /// The GPU buffer of a tensor placed on a GPU.
    #[cfg(feature = "gpu")]
    pub fn cuda_buffer<'m>(&'m self, t: &'m LoadedTensor) -> Option<&'m qload_placement::cuda::CudaBuffer> {
        match &t.storage {
            Storage::Cuda(b) => Some(b),
            _ => None,
        }
    }

    /// Writes every tensor, in load order, as a GGUF into `out`: `writer` carries the
    /// metadata; BitNet types switch it to the fork's type numbering. Returns the bytes
    /// written. Native pre-quantized weights and tensors on a GPU cannot be written.
    pub fn write_gguf(&self, mut writer: qload_formats::gguf::GgufWriter, out: &mut dyn std::io::Write) -> Result<u64> {
        if let Some(t) = self.tensors.iter().find(|t| t.scheme.is_some()) {
            return Err(Error::Unsupported {
                name: t.name.clone(),
                dtype: t.dtype,
                op: "write a native pre-quantized weight as GGUF (dequantize or transcode it)",
            });
        }
        if let Some(t) = self.tensors.iter().find(|t| t.device != qload_placement::Device::Cpu) {
            return Err(Error::Unsupported {
                name: t.name.clone(),
                dtype: t.dtype,
                op: "write a tensor that lives on a GPU",
            });
        }
        if self
            .tensors
            .iter()
            .any(|t| matches!(t.dtype, DType::I2S | DType::TL1 | DType::TL2 | DType::I8S))
        {
            writer = writer.flavor(qload_formats::GgmlFlavor::Bitnet);
        }
        // bitnet.cpp's converter gives each TL1/TL2 weight its scale twice: as the f32
        // opening the 32-byte area after the packed bytes (where its kernels read it)
        // and as a one-value F32 tensor `<name>_scale` right after the weight. Written
        // here the same way, unless the model already holds that tensor.
        enum Part {
            Tensor(usize),
            Scale([u8; 4]),
        }
        let names: std::collections::HashSet<&str> = self.tensors.iter().map(|t| t.name.as_str()).collect();
        let mut parts = Vec::with_capacity(self.tensors.len());
        for (i, t) in self.tensors.iter().enumerate() {
            writer.add_tensor(&t.name, t.dtype, &t.shape)?;
            parts.push(Part::Tensor(i));
            let scale_name = format!("{}_scale", t.name);
            if matches!(t.dtype, DType::TL1 | DType::TL2) && !names.contains(scale_name.as_str()) {
                let bytes = self.bytes(t);
                let scale = crate::weight::tl_scale_area(bytes).ok_or_else(|| Error::Bitnet {
                    name: t.name.clone(),
                    reason: format!("{} bytes hold no 32-byte scale area", bytes.len()),
                })?;
                writer.add_tensor(&scale_name, DType::F32, &[1])?;
                parts.push(Part::Scale([scale[0], scale[1], scale[2], scale[3]]));
            }
        }
        let mut out = out;
        Ok(writer.write(&mut out, |i, w| match parts[i] {
            Part::Tensor(j) => w.write_all(self.bytes(&self.tensors[j])),
            Part::Scale(s) => w.write_all(&s),
        })?)
    }

    /// [`LoadedModel::write_gguf`] into the file `path`, atomically (temporary file in the
    /// same folder, fsync, rename): a crash never leaves a partial file under `path`.
    pub fn write_gguf_file(&self, writer: qload_formats::gguf::GgufWriter, path: &Path) -> Result<u64> {
        let mut total = 0;
        let mut refused = None;
        let written = qload_formats::gguf::write_file_atomic(path, |w| match self.write_gguf(writer, w) {
            Ok(n) => {
                total = n;
                Ok(())
            }
            Err(e) => {
                refused = Some(e);
                Err(qload_formats::Error::Write {
                    reason: "the model cannot be written".into(),
                })
            }
        });
        match (written, refused) {
            (Ok(()), _) => Ok(total),
            (Err(_), Some(e)) => Err(e),
            (Err(e), None) => Err(e.into()),
        }
    }

    /// A pre-quantized weight kept native, as its decoder (dequantize by rows, matvec).
    pub fn prequant<'m>(&'m self, t: &'m LoadedTensor) -> Option<PrequantTensor<'m>> {
        match t.storage {
            Storage::Prequant(w) => self.detection.weights.get(w)?.tensor(&self.source).ok(),
            _ => None,
        }
    }

    /// What pre-quantized weights the source holds and which keys they consume.
    pub fn detection(&self) -> &Detection {
        &self.detection
    }

    /// The opened source.
    pub fn source(&self) -> &WeightSource {
        &self.source
    }
}

/// What was done to a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Kept as stored, as a view of the mapped file.
    #[default]
    Mapped,
    /// Kept as stored, gathered from a strided view into an owned buffer.
    Gathered,
    /// Converted to another type (quantized, requantized or dequantized) into an owned buffer.
    Converted,
    /// A pre-quantized weight kept in its library's encoding (parts mapped).
    Native,
}

/// Per-tensor statistics.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TensorStat {
    /// Name after renaming.
    pub name: String,
    /// Name as stored.
    pub source_name: String,
    /// Elements.
    pub parameters: u64,
    /// Type as stored.
    pub dtype_before: DType,
    /// Type as loaded.
    pub dtype_after: DType,
    /// Bytes as stored.
    pub bytes_before: u64,
    /// Bytes as loaded.
    pub bytes_after: u64,
    /// What was done.
    pub action: Action,
    /// How the type was decided.
    pub decision: DecisionKind,
    /// Why (the policy's rule).
    pub reason: String,
    /// Reconstruction error, when measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorStats>,
    /// GGUF <-> HF renamed q/k rows that llama.cpp permuted (data not re-permuted).
    pub rope_permuted: bool,
    /// The pre-quantized scheme it was stored in (`nf4 bs64 dq`, `mlx affine 4bit g64`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Whether it was quantized with an importance matrix.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub imatrix: bool,
}

impl TensorStat {
    /// `bytes_before / bytes_after` (1 when nothing is stored).
    pub fn compression_ratio(&self) -> f64 {
        if self.bytes_after == 0 {
            1.0
        } else {
            self.bytes_before as f64 / self.bytes_after as f64
        }
    }
}

/// Totals and per-tensor statistics of a load (`--stats out.json`).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct LoadReport {
    /// Files opened.
    pub files: Vec<String>,
    /// Their format.
    pub format: String,
    /// Tensors in the source.
    pub tensors_in_source: usize,
    /// Tensors left out by the filter.
    pub tensors_filtered_out: usize,
    /// Tensors loaded.
    pub tensors_loaded: usize,
    /// Expected names, when a list was given.
    pub tensors_expected: Option<usize>,
    /// Names with no renaming rule (kept as stored).
    pub unmatched_names: Vec<String>,
    /// Elements loaded.
    pub total_parameters: u64,
    /// Bytes as stored.
    pub original_bytes: u64,
    /// Bytes as loaded.
    pub stored_bytes: u64,
    /// `original_bytes / stored_bytes`.
    pub compression_ratio: f64,
    /// The quantization policy (`keep`, a type name or a mix).
    pub policy: String,
    /// The transient-memory budget, bytes.
    pub budget_bytes: u64,
    /// Mean relative RMSE over measured tensors.
    pub mean_rel_rmse: Option<f64>,
    /// Largest absolute error over measured tensors.
    pub max_abs_error: Option<f64>,
    /// Seconds from open to ready.
    pub wall_time_s: f64,
    /// The process's peak resident set size (Linux `VmHWM`), if known.
    pub peak_rss_bytes: Option<u64>,
    /// Decisions worth knowing (reader notes, unused patterns).
    pub notes: Vec<String>,
    /// Bytes planned per device (`cpu`, `cuda:N`), when a placement was asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<(String, u64)>,
    /// What the cache did, when a cache directory was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<crate::cache::CacheInfo>,
    /// One entry per loaded tensor.
    pub per_tensor: Vec<TensorStat>,
}

impl LoadReport {
    /// One line for humans: "loaded 21/21 tensors: 21 kept (mapped); 1.1 MiB in 3 ms; peak RSS 12 MiB".
    pub fn summary(&self) -> String {
        let mapped = self.per_tensor.iter().filter(|t| t.action == Action::Mapped).count();
        let gathered = self.per_tensor.iter().filter(|t| t.action == Action::Gathered).count();
        let of = self
            .tensors_expected
            .unwrap_or(self.tensors_in_source - self.tensors_filtered_out);
        let mut parts: Vec<String> = Vec::new();
        let mut groups: std::collections::BTreeMap<(u8, String), usize> = Default::default();
        for t in &self.per_tensor {
            let key = match t.decision {
                DecisionKind::Keep => continue,
                DecisionKind::Convert => (0, format!("→ {}", t.dtype_after)),
                DecisionKind::Promote => (1, format!("promoted to {}", t.dtype_after)),
                DecisionKind::Fallback => (2, format!("fell back to {}", t.dtype_after)),
            };
            *groups.entry(key).or_default() += 1;
        }
        for ((_, what), n) in groups {
            parts.push(format!("{n} {what}"));
        }
        if mapped > 0 {
            parts.push(format!("{mapped} kept as stored (mapped)"));
        }
        if gathered > 0 {
            parts.push(format!("{gathered} gathered from strided views"));
        }
        let native = self.per_tensor.iter().filter(|t| t.action == Action::Native).count();
        if native > 0 {
            parts.push(format!("{native} kept pre-quantized (native)"));
        }
        let mut s = format!("loaded {}/{} tensors: {}", self.tensors_loaded, of, parts.join(", "));
        let decoded = self
            .per_tensor
            .iter()
            .filter(|t| t.scheme.is_some() && t.action == Action::Converted)
            .count();
        if decoded > 0 {
            s.push_str(&format!(" ({decoded} decoded from pre-quantized weights)"));
        }
        if self.tensors_filtered_out > 0 {
            s.push_str(&format!("; {} filtered out", self.tensors_filtered_out));
        }
        if self.original_bytes != self.stored_bytes {
            s.push_str(&format!(
                "; {} → {} ({:.1}×) in {:.2} s",
                human_bytes(self.original_bytes),
                human_bytes(self.stored_bytes),
                self.compression_ratio,
                self.wall_time_s
            ));
        } else {
            s.push_str(&format!(
                "; {} in {:.1} ms",
                human_bytes(self.stored_bytes),
                self.wall_time_s * 1e3
            ));
        }
        if let (Some(r), Some(m)) = (self.mean_rel_rmse, self.max_abs_error) {
            s.push_str(&format!("; mean relative RMSE {r:.4}, max |error| {m:.3e}"));
        }
        if let Some(rss) = self.peak_rss_bytes {
            s.push_str(&format!("; peak RSS {}", human_bytes(rss)));
        }
        if self.devices.iter().any(|(d, _)| d != "cpu") {
            let on: Vec<String> = self
                .devices
                .iter()
                .map(|(d, b)| format!("{d} {}", human_bytes(*b)))
                .collect();
            s.push_str(&format!("; placed: {}", on.join(", ")));
        }
        match self.cache.as_ref().map(|c| c.outcome.as_str()) {
            Some("hit") => s.push_str("; from the cache"),
            Some("stored") => s.push_str("; cached"),
            _ => {}
        }
        s
    }
}

fn human_bytes(n: u64) -> String {
    qload_placement::format_size(n)
}

/// The process's peak resident set size in bytes (Linux `/proc/self/status` VmHWM).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_hwm() {
        assert_eq!(
            parse_vm_hwm("Name:\tx\nVmHWM:\t   1234 kB\nVmRSS: 1 kB\n"),
            Some(1234 * 1024)
        );
        assert_eq!(parse_vm_hwm("Name: x\n"), None);
        assert!(cfg!(not(target_os = "linux")) || peak_rss_bytes().is_some());
    }
}
