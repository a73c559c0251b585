//! Strategies on simulated inventories (with property tests: capacity never exceeded,
//! every tensor placed exactly once, no layer split unless asked, deterministic), the
//! fallback chain, and — with `--features gpu` on a machine with a CUDA device — the
//! upload/download round trip, out-of-memory handling and upload bandwidth.

use proptest::prelude::*;
use proptest::strategy::Strategy as _;
use qload_placement::{
    AllocationFailure, Auto, CpuOnly, Device, EdgePlacement, EdgePolicy, FallbackChain, GpuBudget, GpuFirst, Inventory,
    LayerMap, MultiGpu, NGpuLayers, PlacementError, Plan, Role, Strategy, TensorSpec,
};

/// A llama-like model: embedding, `n` layers of 9 tensors (`layer_bytes` in all),
/// final norm and head.
fn model(n: u32, layer_bytes: u64) -> Vec<TensorSpec> {
    let mut t = vec![TensorSpec::classify("token_embd.weight", 1000)];
    for l in 0..n {
        for (name, share) in [
            ("attn_norm", 0),
            ("attn_q", 2),
            ("attn_k", 1),
            ("attn_v", 1),
            ("attn_output", 2),
            ("ffn_norm", 0),
            ("ffn_gate", 5),
            ("ffn_up", 5),
            ("ffn_down", 5),
        ] {
            let bytes = if share == 0 { 4 } else { layer_bytes * share / 21 };
            t.push(TensorSpec::classify(format!("blk.{l}.{name}.weight"), bytes));
        }
    }
    t.push(TensorSpec::classify("output_norm.weight", 4));
    t.push(TensorSpec::classify("output.weight", 1000));
    t
}

fn inv(spec: &str) -> Inventory {
    Inventory::simulate(spec).unwrap()
}

fn check(plan: &Plan, tensors: &[TensorSpec]) {
    plan.verify(tensors)
        .unwrap_or_else(|e| panic!("{e}\n{}", plan.to_text(true)));
}

#[test]
fn cpu_only_puts_everything_on_the_cpu() {
    let t = model(4, 2100);
    let plan = CpuOnly.plan(&t, &inv("cuda:0=1GiB,cpu=1MiB")).unwrap();
    check(&plan, &t);
    assert!(plan.tensors.iter().all(|p| p.device == Device::Cpu));
    assert_eq!(plan.usage(Device::Cuda(0)).unwrap().bytes_used, 0);
    let e = CpuOnly.plan(&t, &inv("cpu=1KiB")).unwrap_err();
    assert!(
        matches!(
            e,
            PlacementError::DoesNotFit {
                device: Device::Cpu,
                ..
            }
        ),
        "{e}"
    );
    let e = CpuOnly.plan(&t, &inv("cuda:0=1GiB")).unwrap_err();
    assert!(
        matches!(e, PlacementError::DeviceNotInInventory { device: Device::Cpu }),
        "{e}"
    );
}

#[test]
fn gpu_first_fills_the_budget_then_spills_whole_layers() {
    let t = model(8, 2100);
    // 80% of 10_000 = 8000 bytes: three layers of ~2100 (+8 norm bytes) and no more.
    let plan = GpuFirst::default().plan(&t, &inv("cuda:0=10000B,cpu=1MiB")).unwrap();
    check(&plan, &t);
    let gpu = plan.usage(Device::Cuda(0)).unwrap();
    assert_eq!(gpu.capacity_bytes, 8000);
    assert_eq!(gpu.layers, [0, 1, 2]);
    assert_eq!(plan.usage(Device::Cpu).unwrap().layers, [3, 4, 5, 6, 7]);
    assert_eq!(plan.device_of("token_embd.weight"), Some(Device::Cpu));
    assert_eq!(plan.device_of("output.weight"), Some(Device::Cpu));
    assert!(
        plan.decisions.iter().any(|d| d.contains("cuda:0 full at")),
        "{:?}",
        plan.decisions
    );
    assert!(plan.split_layers().is_empty());

    // Everything fits: the output layer follows the last layer onto the GPU.
    let plan = GpuFirst::default().plan(&t, &inv("cuda:0=1MiB,cpu=1MiB")).unwrap();
    assert_eq!(plan.device_of("output.weight"), Some(Device::Cuda(0)));
    assert_eq!(plan.device_of("token_embd.weight"), Some(Device::Cpu));

    // Embedding with the layers, reserve and --vram cap.
    let s = GpuFirst {
        budget: GpuBudget {
            vram_fraction: 1.0,
            reserve_bytes: 1000,
            vram_limit: Some(5000),
            max_gpus: None,
        },
        edges: EdgePolicy {
            embedding: EdgePlacement::WithLayers,
            output: EdgePlacement::Cpu,
        },
        split_layers: false,
    };
    let plan = s.plan(&t, &inv("cuda:0=10000B,cpu=1MiB")).unwrap();
    check(&plan, &t);
    assert_eq!(plan.usage(Device::Cuda(0)).unwrap().capacity_bytes, 5000);
    assert_eq!(plan.device_of("token_embd.weight"), Some(Device::Cuda(0)));
    assert_eq!(plan.device_of("output.weight"), Some(Device::Cpu));
}

#[test]
fn gpu_first_may_split_layers_when_told() {
    let t = model(4, 2100);
    let s = GpuFirst {
        split_layers: true,
        ..GpuFirst::default()
    };
    let plan = s.plan(&t, &inv("cuda:0=3000B,cpu=1MiB")).unwrap();
    check(&plan, &t);
    assert_eq!(plan.split_layers(), [1]);
    let unsplit = GpuFirst::default().plan(&t, &inv("cuda:0=3000B,cpu=1MiB")).unwrap();
    assert!(unsplit.split_layers().is_empty());
}

#[test]
fn gpu_first_without_a_cpu_fails_with_a_typed_error() {
    let t = model(4, 2100);
    let e = GpuFirst::default().plan(&t, &inv("cuda:0=5000B")).unwrap_err();
    match e {
        PlacementError::DoesNotFit { device, needed, .. } => {
            assert_eq!(device, Device::Cuda(0));
            assert!(needed > 0);
        }
        e => panic!("{e}"),
    }
    let e = GpuFirst {
        budget: GpuBudget {
            vram_fraction: 1.5,
            ..GpuBudget::default()
        },
        ..GpuFirst::default()
    }
    .plan(&t, &inv("cpu=1MiB"))
    .unwrap_err();
    assert!(matches!(e, PlacementError::BadOption { .. }), "{e}");
}

#[test]
fn multi_gpu_splits_in_proportion_to_free_memory() {
    let t = model(12, 2100);
    // Budgets 32000 and 16000 (2:1): 12 layers of ~2108 bytes -> 8 + 4.
    let plan = MultiGpu::default()
        .plan(&t, &inv("cuda:0=40000B,cuda:1=20000B,cpu=1MiB"))
        .unwrap();
    check(&plan, &t);
    let a = plan.usage(Device::Cuda(0)).unwrap().layers.clone();
    let b = plan.usage(Device::Cuda(1)).unwrap().layers.clone();
    assert_eq!(a, (0..8).collect::<Vec<_>>(), "{}", plan.to_text(false));
    assert_eq!(b, (8..12).collect::<Vec<_>>(), "{}", plan.to_text(false));
    assert_eq!(plan.device_of("output.weight"), Some(Device::Cuda(1)));

    // Too big for both: each filled, the rest on the CPU, layers in order.
    let plan = MultiGpu::default()
        .plan(&t, &inv("cuda:0=5000B,cuda:1=5000B,cpu=1MiB"))
        .unwrap();
    check(&plan, &t);
    assert_eq!(plan.usage(Device::Cuda(0)).unwrap().layers, [0]);
    assert_eq!(plan.usage(Device::Cuda(1)).unwrap().layers, [1]);
    assert_eq!(plan.usage(Device::Cpu).unwrap().layers.first(), Some(&2));

    // --gpus 1 leaves the second GPU out.
    let s = MultiGpu {
        budget: GpuBudget {
            max_gpus: Some(1),
            ..GpuBudget::default()
        },
        ..MultiGpu::default()
    };
    let plan = s.plan(&t, &inv("cuda:0=20000B,cuda:1=10000B,cpu=1MiB")).unwrap();
    check(&plan, &t);
    assert_eq!(plan.usage(Device::Cuda(1)).unwrap().bytes_used, 0);
    assert_eq!(plan.usage(Device::Cuda(1)).unwrap().capacity_bytes, 0);
}

#[test]
fn n_gpu_layers_follows_llama_cpp() {
    let t = model(4, 2100);
    let big = inv("cuda:0=1MiB,cpu=1MiB");
    let ngl = |n| {
        NGpuLayers {
            n_gpu_layers: n,
            ..NGpuLayers::default()
        }
        .plan(&t, &big)
        .unwrap()
    };
    // 0: nothing on the GPU.
    let p = ngl(0);
    check(&p, &t);
    assert_eq!(p.usage(Device::Cuda(0)).unwrap().tensors, 0);
    // 1: only the output layer (slot n).
    let p = ngl(1);
    check(&p, &t);
    assert!(p.usage(Device::Cuda(0)).unwrap().layers.is_empty());
    assert_eq!(p.device_of("output.weight"), Some(Device::Cuda(0)));
    assert_eq!(p.device_of("output_norm.weight"), Some(Device::Cuda(0)));
    // 3: the output layer and the last two layers.
    let p = ngl(3);
    assert_eq!(p.usage(Device::Cuda(0)).unwrap().layers, [2, 3]);
    // n: layer 0 stays on the CPU.
    let p = ngl(4);
    assert_eq!(p.usage(Device::Cuda(0)).unwrap().layers, [1, 2, 3]);
    // n + 1 and more: everything but the input embedding.
    for n in [5, 99] {
        let p = ngl(n);
        assert_eq!(p.usage(Device::Cuda(0)).unwrap().layers, [0, 1, 2, 3]);
        assert_eq!(p.device_of("token_embd.weight"), Some(Device::Cpu));
    }
    // Asking for more than fits is an error, not a silent spill.
    let e = NGpuLayers {
        n_gpu_layers: 99,
        ..NGpuLayers::default()
    }
    .plan(&t, &inv("cuda:0=5000B,cpu=1MiB"))
    .unwrap_err();
    assert!(
        matches!(
            e,
            PlacementError::DoesNotFit {
                device: Device::Cuda(0),
                ..
            }
        ),
        "{e}"
    );
    // Without a GPU, the layers stay on the CPU.
    let p = NGpuLayers {
        n_gpu_layers: 99,
        ..NGpuLayers::default()
    }
    .plan(&t, &inv("cpu=1MiB"))
    .unwrap();
    check(&p, &t);
    assert!(p.decisions.iter().any(|d| d.contains("no GPU")));
}

#[test]
fn n_gpu_layers_splits_across_gpus_like_llama_cpp() {
    let t = model(6, 2100);
    let p = NGpuLayers {
        n_gpu_layers: 7,
        ..NGpuLayers::default()
    }
    .plan(&t, &inv("cuda:0=1MiB,cuda:1=1MiB,cpu=1MiB"))
    .unwrap();
    check(&p, &t);
    // 7 slots over two equal GPUs: slots 0-3 (p/7 < 0.5) on cuda:0, 4-6 on cuda:1.
    assert_eq!(p.usage(Device::Cuda(0)).unwrap().layers, [0, 1, 2, 3]);
    assert_eq!(p.usage(Device::Cuda(1)).unwrap().layers, [4, 5]);
    assert_eq!(p.device_of("output.weight"), Some(Device::Cuda(1)));
}

#[test]
fn layer_map_like_mistral_rs() {
    assert_eq!(LayerMap::parse("0:10;1:20").unwrap(), [(0, 10), (1, 20)]);
    assert_eq!(LayerMap::parse(" 1:2 , 0:1 ").unwrap(), [(1, 2), (0, 1)]);
    for bad in ["", "0", "0:x", "a:1", "0:1;0:2"] {
        let e = LayerMap::parse(bad).unwrap_err();
        assert!(matches!(e, PlacementError::BadLayerMap { .. }), "{bad}: {e}");
    }
    let t = model(6, 2100);
    let s = LayerMap {
        map: LayerMap::parse("1:2;0:3").unwrap(),
        ..LayerMap::default()
    };
    let p = s.plan(&t, &inv("cuda:0=1MiB,cuda:1=1MiB,cpu=1MiB")).unwrap();
    check(&p, &t);
    assert_eq!(p.usage(Device::Cuda(1)).unwrap().layers, [0, 1]);
    assert_eq!(p.usage(Device::Cuda(0)).unwrap().layers, [2, 3, 4]);
    assert_eq!(p.usage(Device::Cpu).unwrap().layers, [5]);
    assert_eq!(p.device_of("output.weight"), Some(Device::Cpu));
    let e = s.plan(&t, &inv("cuda:0=1MiB,cpu=1MiB")).unwrap_err();
    assert!(
        matches!(
            e,
            PlacementError::DeviceNotInInventory {
                device: Device::Cuda(1)
            }
        ),
        "{e}"
    );
    // All layers mapped: the output layer follows the last one.
    let s = LayerMap {
        map: vec![(0, 100)],
        ..LayerMap::default()
    };
    let p = s.plan(&t, &inv("cuda:0=1MiB,cpu=1MiB")).unwrap();
    assert_eq!(p.device_of("output.weight"), Some(Device::Cuda(0)));
    assert!(p.decisions.iter().any(|d| d.contains("names 100 layers")));
}

#[test]
fn auto_chooses_and_says_why() {
    let t = model(8, 2100);
    let p = Auto::default().plan(&t, &inv("cpu=1MiB")).unwrap();
    assert_eq!(p.strategy, "auto -> cpu");
    assert!(p.decisions[1].contains("no CUDA device"), "{:?}", p.decisions);
    let p = Auto::default().plan(&t, &inv("cuda:0=1MiB,cpu=1MiB")).unwrap();
    assert_eq!(p.strategy, "auto -> gpu-first");
    assert!(p.decisions[1].contains("fits cuda:0"), "{:?}", p.decisions);
    let p = Auto::default().plan(&t, &inv("cuda:0=10000B,cpu=1MiB")).unwrap();
    assert_eq!(p.strategy, "auto -> gpu-first");
    assert!(p.decisions[1].contains("one GPU"), "{:?}", p.decisions);
    let p = Auto::default()
        .plan(&t, &inv("cuda:0=10000B,cuda:1=10000B,cpu=1MiB"))
        .unwrap();
    assert_eq!(p.strategy, "auto -> multi-gpu");
    check(&p, &t);
}

#[test]
fn duplicate_tensors_are_refused() {
    let t = vec![TensorSpec::classify("a", 1), TensorSpec::classify("a", 2)];
    let e = CpuOnly.plan(&t, &inv("cpu=1MiB")).unwrap_err();
    assert!(matches!(e, PlacementError::DuplicateTensor { .. }), "{e}");
}

#[test]
fn tied_embeddings_are_noted() {
    let t: Vec<_> = model(2, 2100)
        .into_iter()
        .filter(|t| t.name != "output.weight")
        .collect();
    let p = CpuOnly.plan(&t, &inv("cpu=1MiB")).unwrap();
    assert!(p.decisions.iter().any(|d| d.contains("tied")), "{:?}", p.decisions);
}

#[test]
fn fallback_moves_the_failed_layer_and_what_follows() {
    let t = model(8, 2100);
    let inventory = inv("cuda:0=20000B,cuda:1=20000B,cpu=1MiB");
    let plan = GpuFirst::default().plan(&t, &inventory).unwrap();
    assert_eq!(plan.usage(Device::Cuda(0)).unwrap().layers, (0..7).collect::<Vec<_>>());
    let chain = FallbackChain::from_plan(&plan);
    let failure = AllocationFailure {
        device: Device::Cuda(0),
        tensor: "blk.3.ffn_up.weight".into(),
    };
    let re = chain.replan_after_failure(&plan, &t, &failure).unwrap();
    check(&re, &t);
    assert_eq!(re.usage(Device::Cuda(0)).unwrap().layers, [0, 1, 2]);
    assert_eq!(re.usage(Device::Cuda(1)).unwrap().layers, [3, 4, 5, 6, 7]);
    assert_eq!(re.device_of("token_embd.weight"), Some(Device::Cpu));
    assert!(re.strategy.ends_with("+ fallback"));
    assert!(re.decisions.last().unwrap().contains("blk.3.ffn_up.weight"));
    // The same again on cuda:1: the rest goes to the CPU.
    let again = chain
        .replan_after_failure(
            &re,
            &t,
            &AllocationFailure {
                device: Device::Cuda(1),
                tensor: "blk.5.attn_q.weight".into(),
            },
        )
        .unwrap();
    check(&again, &t);
    assert_eq!(again.usage(Device::Cuda(1)).unwrap().layers, [3, 4]);
    assert_eq!(again.usage(Device::Cpu).unwrap().layers, [5, 6, 7]);
    // Unknown tensors and devices are typed errors.
    let e = chain
        .replan_after_failure(
            &plan,
            &t,
            &AllocationFailure {
                device: Device::Cuda(0),
                tensor: "nope".into(),
            },
        )
        .unwrap_err();
    assert!(matches!(e, PlacementError::UnknownTensor { .. }), "{e}");
    let e = chain
        .replan_after_failure(
            &plan,
            &t,
            &AllocationFailure {
                device: Device::Cuda(7),
                tensor: "blk.0.attn_q.weight".into(),
            },
        )
        .unwrap_err();
    assert!(matches!(e, PlacementError::DeviceNotInInventory { .. }), "{e}");
    // Nowhere left to go.
    let cpu_only = CpuOnly.plan(&t, &inv("cpu=1MiB")).unwrap();
    let e = FallbackChain::from_plan(&cpu_only)
        .replan_after_failure(
            &cpu_only,
            &t,
            &AllocationFailure {
                device: Device::Cpu,
                tensor: "blk.0.attn_q.weight".into(),
            },
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            PlacementError::DoesNotFit {
                device: Device::Cpu,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn plans_serialize_round_trip() {
    let t = model(3, 2100);
    let p = GpuFirst::default().plan(&t, &inv("cuda:0=5000B,cpu=1MiB")).unwrap();
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["schema"], "qload.plan/1");
    assert_eq!(json["tensors"][0]["device"], "cpu");
    assert_eq!(json["devices"][0]["device"], "cuda:0");
    assert_eq!(json["tensors"][1]["role"], "layer");
    let back: Plan = serde_json::from_value(json).unwrap();
    assert_eq!(back, p);
    let text = p.to_text(true);
    assert!(text.contains("cuda:0") && text.contains("REASON"), "{text}");
}

// ---------------------------------------------------------------------------------
// Property tests.

fn arb_tensors() -> impl proptest::strategy::Strategy<Value = Vec<TensorSpec>> {
    (
        0u32..64,
        proptest::collection::vec(1u64..5_000_000, 1..12),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(n_layers, sizes, embed, head)| {
            let mut t = Vec::new();
            if embed {
                t.push(TensorSpec::new(
                    "token_embd.weight",
                    sizes[0] * 3,
                    None,
                    Role::Embedding,
                ));
            }
            for l in 0..n_layers {
                for (k, s) in sizes.iter().enumerate() {
                    t.push(TensorSpec::new(
                        format!("blk.{l}.t{k}"),
                        s / (1 + u64::from(l % 3)),
                        Some(l),
                        Role::Layer,
                    ));
                }
            }
            if head {
                t.push(TensorSpec::new("output_norm.weight", 1024, None, Role::Output));
                t.push(TensorSpec::new(
                    "output.weight",
                    sizes[sizes.len() - 1] * 2,
                    None,
                    Role::Output,
                ));
            }
            t.push(TensorSpec::new("rope_freqs.weight", 256, None, Role::Other));
            t
        })
}

fn arb_inventory() -> impl proptest::strategy::Strategy<Value = Inventory> {
    (
        proptest::collection::vec((1u64..400_000_000, 0u64..=100), 0..4),
        proptest::option::of(1u64..2_000_000_000),
    )
        .prop_map(|(gpus, cpu)| {
            let mut spec: Vec<String> = gpus
                .iter()
                .enumerate()
                .map(|(i, (total, pct))| format!("cuda:{i}={total}B/{}B", total * pct / 100))
                .collect();
            if let Some(c) = cpu {
                spec.push(format!("cpu={c}B"));
            }
            if spec.is_empty() {
                spec.push("cpu=1B".into());
            }
            Inventory::simulate(&spec.join(",")).unwrap()
        })
}

fn strategies(n_gpus: usize) -> Vec<Box<dyn Strategy>> {
    let budget = GpuBudget::default();
    let map: Vec<(u32, u32)> = (0..n_gpus as u32).map(|o| (o, 3 + o)).collect();
    let mut s: Vec<Box<dyn Strategy>> = vec![
        Box::new(CpuOnly),
        Box::new(GpuFirst::default()),
        Box::new(MultiGpu::default()),
        Box::new(Auto::default()),
        Box::new(NGpuLayers {
            n_gpu_layers: 5,
            budget,
            edges: EdgePolicy::default(),
        }),
        Box::new(GpuFirst {
            edges: EdgePolicy {
                embedding: EdgePlacement::WithLayers,
                output: EdgePlacement::Cpu,
            },
            budget: GpuBudget {
                vram_fraction: 0.5,
                reserve_bytes: 1 << 20,
                vram_limit: Some(100_000_000),
                max_gpus: Some(2),
            },
            split_layers: false,
        }),
    ];
    if !map.is_empty() {
        s.push(Box::new(LayerMap {
            map,
            ..LayerMap::default()
        }));
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn strategies_respect_capacity_place_once_keep_layers_whole_and_are_deterministic(
        tensors in arb_tensors(),
        inventory in arb_inventory(),
    ) {
        for s in strategies(inventory.gpus().count()) {
            match s.plan(&tensors, &inventory) {
                Ok(plan) => {
                    prop_assert!(plan.verify(&tensors).is_ok(), "{}: {:?}", s.name(), plan.verify(&tensors));
                    prop_assert!(plan.split_layers().is_empty(), "{} split layers", s.name());
                    for d in &plan.devices {
                        let m = inventory.get(d.device).unwrap();
                        prop_assert!(d.bytes_used <= d.capacity_bytes && d.capacity_bytes <= m.free_bytes);
                    }
                    let again = s.plan(&tensors, &inventory).unwrap();
                    prop_assert_eq!(&plan, &again);
                }
                Err(PlacementError::DoesNotFit { needed, available, .. }) => prop_assert!(needed > available),
                Err(PlacementError::DeviceNotInInventory { device }) => prop_assert!(inventory.get(device).is_none()),
                Err(e) => prop_assert!(false, "{}: unexpected {e}", s.name()),
            }
        }
    }

    #[test]
    fn split_layers_only_when_asked_and_still_within_capacity(
        tensors in arb_tensors(),
        inventory in arb_inventory(),
    ) {
        let s = GpuFirst { split_layers: true, ..GpuFirst::default() };
        if let Ok(plan) = s.plan(&tensors, &inventory) {
            prop_assert!(plan.verify(&tensors).is_ok(), "{:?}", plan.verify(&tensors));
        }
    }

    #[test]
    fn fallback_replans_stay_valid(
        tensors in arb_tensors(),
        inventory in arb_inventory(),
        pick in any::<prop::sample::Index>(),
    ) {
        let Ok(plan) = GpuFirst::default().plan(&tensors, &inventory) else { return Ok(()) };
        let on_gpu: Vec<_> = plan.tensors.iter().filter(|t| t.device.is_cuda()).collect();
        if on_gpu.is_empty() {
            return Ok(());
        }
        let failed = on_gpu[pick.index(on_gpu.len())];
        let failure = AllocationFailure { device: failed.device, tensor: failed.name.clone() };
        match FallbackChain::from_plan(&plan).replan_after_failure(&plan, &tensors, &failure) {
            Ok(re) => {
                prop_assert!(re.verify(&tensors).is_ok(), "{:?}", re.verify(&tensors));
                prop_assert!(re.split_layers().is_empty());
                prop_assert!(re.device_of(&failed.name) != Some(failed.device));
                // What was placed before the failed tensor's unit did not move.
                for (a, b) in plan.tensors.iter().zip(&re.tensors) {
                    prop_assert_eq!(&a.name, &b.name);
                    // The failed tensor's unit: its layer, or the output group
                    // (final norm and head move together).
                    let same_unit = (failed.layer.is_some() && a.layer == failed.layer)
                        || (failed.role == Role::Output && a.role == Role::Output);
                    if a.name == failed.name || same_unit {
                        break;
                    }
                    prop_assert_eq!(a.device, b.device);
                }
            }
            Err(PlacementError::DoesNotFit { .. }) => {}
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }
}

// ---------------------------------------------------------------------------------
// CUDA: skipped (with a message) when no driver or device is found.

#[cfg(feature = "gpu")]
mod gpu {
    use std::time::Instant;

    use qload_placement::cuda::{CudaDevice, DEFAULT_STAGING_BYTES};
    use qload_placement::{
        AllocationFailure, Device, DeviceMemory, FallbackChain, GpuFirst, Inventory, PlacementError, Strategy,
        TensorSpec,
    };

    fn device() -> Option<CudaDevice> {
        match CudaDevice::open(0) {
            Ok(d) => Some(d),
            Err(e @ (PlacementError::NoCudaDriver { .. } | PlacementError::NoSuchDevice { .. })) => {
                eprintln!("skipped: {e}");
                None
            }
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn missing_driver_or_device_is_a_typed_error() {
        match qload_placement::cuda::device_count() {
            Ok(n) => {
                let e = CudaDevice::open(n).unwrap_err();
                assert!(matches!(e, PlacementError::NoSuchDevice { .. }), "{e}");
            }
            Err(e) => {
                assert!(matches!(e, PlacementError::NoCudaDriver { .. }), "{e}");
                assert!(e.to_string().contains("no CUDA device: driver not found"), "{e}");
            }
        }
    }

    #[test]
    fn upload_download_round_trip_is_byte_exact() {
        let Some(dev) = device() else { return };
        let mut stager = dev.stager(DEFAULT_STAGING_BYTES).unwrap();
        for len in [0usize, 1, 4095, 4 << 20, (4 << 20) + 1, (20 << 20) + 3] {
            let data: Vec<u8> = (0..len).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
            let buf = dev.upload(&mut stager, &data).unwrap();
            assert_eq!(buf.len(), len);
            assert_eq!(buf.device(), Device::Cuda(0));
            assert!(buf.download().unwrap() == data, "len {len}");
        }
    }

    #[test]
    fn out_of_memory_is_typed_and_falls_back() {
        let Some(dev) = device() else { return };
        let m = dev.memory().unwrap();
        let too_much = m.total_bytes + (1 << 30);
        // A plan made on an inventory that overstates the GPU puts the layer there...
        let tensors = vec![
            TensorSpec::classify("blk.0.ffn_up.weight", too_much),
            TensorSpec::classify("blk.1.ffn_up.weight", 1 << 20),
        ];
        let inventory = Inventory::new(vec![
            DeviceMemory {
                device: Device::Cuda(0),
                total_bytes: 4 * too_much,
                free_bytes: 4 * too_much,
                name: None,
            },
            DeviceMemory {
                device: Device::Cpu,
                total_bytes: u64::MAX / 2,
                free_bytes: u64::MAX / 2,
                name: None,
            },
        ])
        .unwrap();
        let plan = GpuFirst::default().plan(&tensors, &inventory).unwrap();
        assert_eq!(plan.device_of("blk.0.ffn_up.weight"), Some(Device::Cuda(0)));
        // ...the real allocation fails with a typed error...
        let e = dev.alloc(too_much as usize).unwrap_err();
        assert!(
            matches!(
                e,
                PlacementError::OutOfDeviceMemory {
                    device: Device::Cuda(0),
                    ..
                }
            ),
            "{e}"
        );
        // ...and the fallback chain moves it (and what follows) to the CPU.
        let failure = AllocationFailure {
            device: Device::Cuda(0),
            tensor: "blk.0.ffn_up.weight".into(),
        };
        let re = FallbackChain::from_plan(&plan)
            .replan_after_failure(&plan, &tensors, &failure)
            .unwrap();
        assert_eq!(re.device_of("blk.0.ffn_up.weight"), Some(Device::Cpu));
        assert_eq!(re.device_of("blk.1.ffn_up.weight"), Some(Device::Cpu));
        // The device still works after the failure.
        let mut stager = dev.stager(DEFAULT_STAGING_BYTES).unwrap();
        assert_eq!(
            dev.upload(&mut stager, &[1, 2, 3]).unwrap().download().unwrap(),
            [1, 2, 3]
        );
    }

    #[test]
    fn upload_bandwidth() {
        let Some(dev) = device() else { return };
        let mut stager = dev.stager(DEFAULT_STAGING_BYTES).unwrap();
        let data = vec![0x5au8; 512 << 20];
        let mut buf = dev.alloc(data.len()).unwrap();
        buf.upload_from(&mut stager, &data).unwrap(); // warm-up
        let t = Instant::now();
        for _ in 0..4 {
            buf.upload_from(&mut stager, &data).unwrap();
        }
        let gbs = 4.0 * data.len() as f64 / t.elapsed().as_secs_f64() / 1e9;
        eprintln!(
            "upload through {} MiB pinned staging: {gbs:.2} GB/s",
            DEFAULT_STAGING_BYTES >> 20
        );
    }
}
