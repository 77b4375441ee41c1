//! Two ranks as two threads of this process, meeting in a TCPStore on 127.0.0.1 (or a FileStore),
//! each with its own Gloo group: exactly what two rank processes do, minus the fork.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tch::{Kind, Tensor};

use super::{Group, Store};

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn join(port: u16, rank: usize, world: usize, timeout: Duration) -> anyhow::Result<Group> {
    let store = Store::tcp("127.0.0.1", port, world, rank == 0, timeout)?;
    Group::gloo(store, "127.0.0.1", rank, world, timeout)
}

/// Runs `f(group)` on ranks 0 and 1 (two threads); their results in rank order.
fn two_ranks<T: Send + 'static>(
    timeout: Duration,
    f: impl Fn(&Group) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let port = free_port();
    let f = Arc::new(f);
    let handles: Vec<_> = (0..2)
        .map(|rank| {
            let f = f.clone();
            std::thread::spawn(move || {
                let g = join(port, rank, 2, timeout).unwrap();
                f(&g)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
#[ignore = "two c10d groups in one process (two threads) crash it now and then (SIGSEGV, ~1 run in 10; cause not found): run with `cargo test --lib dist:: -- --ignored`; tests/ranks.rs covers the shim with one process per rank"]
fn all_reduce_sums_every_tensor_of_every_dtype_across_buckets() {
    let out = two_ranks(Duration::from_secs(30), |g| {
        let r = g.rank() as f64 + 1.0;
        // two float tensors (one bucket), a non-contiguous one, a double, an int64, and a tensor
        // larger than a bucket (its own bucket)
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0]) * r;
        let b = Tensor::ones([2, 2], (Kind::Float, tch::Device::Cpu)) * r;
        let c = (Tensor::arange(6, (Kind::Float, tch::Device::Cpu)).view([2, 3]) * r).tr();
        let d = Tensor::from_slice(&[0.5f64]) * r;
        let e = Tensor::from_slice(&[g.rank() as i64 + 10]);
        let big_n = super::c10d::BUCKET_BYTES / 4 + 5;
        let big = Tensor::full([big_n], r, (Kind::Float, tch::Device::Cpu));
        g.all_reduce_sum(&[&a, &b, &c, &d, &e, &big]).unwrap();
        (
            Vec::<f32>::try_from(&a).unwrap(),
            Vec::<f32>::try_from(&b.view([-1])).unwrap(),
            Vec::<f32>::try_from(&c.contiguous().view([-1])).unwrap(),
            f64::try_from(&d).unwrap(),
            i64::try_from(&e).unwrap(),
            (big.min().double_value(&[]), big.max().double_value(&[])),
        )
    });
    for (a, b, c, d, e, big) in out {
        assert_eq!(a, vec![3.0, 6.0, 9.0]); // (1 + 2)·[1, 2, 3]
        assert_eq!(b, vec![3.0; 4]);
        assert_eq!(c, vec![0.0, 9.0, 3.0, 12.0, 6.0, 15.0]); // 3·arange(6) transposed
        assert_eq!(d, 1.5);
        assert_eq!(e, 21);
        assert_eq!(big, (3.0, 3.0));
    }
}

#[test]
#[ignore = "two c10d groups in one process (two threads) crash it now and then (SIGSEGV, ~1 run in 10; cause not found): run with `cargo test --lib dist:: -- --ignored`; tests/ranks.rs covers the shim with one process per rank"]
fn broadcast_copies_the_root_rank_into_every_rank() {
    let out = two_ranks(Duration::from_secs(30), |g| {
        let t = Tensor::from_slice(&[g.rank() as f32 * 10.0 + 1.0, 7.0]);
        let u = Tensor::from_slice(&[g.rank() as i64]);
        g.broadcast(&[&t, &u], 1).unwrap();
        (
            Vec::<f32>::try_from(&t).unwrap(),
            i64::try_from(&u).unwrap(),
        )
    });
    assert_eq!(out, vec![(vec![11.0, 7.0], 1), (vec![11.0, 7.0], 1)]);
}

#[test]
#[ignore = "two c10d groups in one process (two threads) crash it now and then (SIGSEGV, ~1 run in 10; cause not found): run with `cargo test --lib dist:: -- --ignored`; tests/ranks.rs covers the shim with one process per rank"]
fn all_gather_stacks_every_rank_in_rank_order() {
    let out = two_ranks(Duration::from_secs(30), |g| {
        let t = Tensor::from_slice(&[g.rank() as i64, 100 + g.rank() as i64]);
        Vec::<i64>::try_from(&g.all_gather(&t).unwrap().view([-1])).unwrap()
    });
    assert_eq!(out, vec![vec![0, 100, 1, 101]; 2]);
}

#[test]
#[ignore = "two c10d groups in one process (two threads) crash it now and then (SIGSEGV, ~1 run in 10; cause not found): run with `cargo test --lib dist:: -- --ignored`; tests/ranks.rs covers the shim with one process per rank"]
fn a_barrier_holds_each_rank_until_the_other_arrives() {
    let arrived = Arc::new(AtomicBool::new(false));
    let seen = arrived.clone();
    let out = two_ranks(Duration::from_secs(30), move |g| {
        if g.rank() == 1 {
            std::thread::sleep(Duration::from_millis(300));
            seen.store(true, Ordering::SeqCst);
        }
        g.barrier().unwrap();
        seen.load(Ordering::SeqCst)
    });
    // rank 0 passed its barrier only after rank 1 had set the flag
    assert_eq!(out, vec![true, true]);
    assert!(arrived.load(Ordering::SeqCst));
}

#[test]
#[ignore = "two c10d groups in one process (two threads) crash it now and then (SIGSEGV, ~1 run in 10; cause not found): run with `cargo test --lib dist:: -- --ignored`; tests/ranks.rs covers the shim with one process per rank"]
fn a_file_store_joins_ranks_as_the_tcp_store_does() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let handles: Vec<_> = (0..2)
        .map(|rank| {
            let path = path.clone();
            std::thread::spawn(move || {
                let t = Duration::from_secs(30);
                let g = Group::gloo(Store::file(&path, 2, t).unwrap(), "127.0.0.1", rank, 2, t)
                    .unwrap();
                let x = Tensor::from_slice(&[rank as f32 + 1.0]);
                g.all_reduce_sum(&[&x]).unwrap();
                f32::try_from(&x).unwrap()
            })
        })
        .collect();
    let sums: Vec<f32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(sums, vec![3.0, 3.0]);
}

#[test]
#[ignore = "two c10d groups in one process (two threads) crash it now and then (SIGSEGV, ~1 run in 10; cause not found): run with `cargo test --lib dist:: -- --ignored`; tests/ranks.rs covers the shim with one process per rank"]
fn a_store_whose_peer_never_joins_fails_within_its_timeout() {
    let start = Instant::now();
    let err = join(free_port(), 0, 2, Duration::from_secs(2))
        .err()
        .expect("rank 1 never joins");
    let took = start.elapsed();
    assert!(took < Duration::from_secs(20), "waited {took:?}");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("rank store") || msg.contains("Gloo group"),
        "{msg}"
    );
}

#[test]
#[ignore = "two c10d groups in one process (two threads) crash it now and then (SIGSEGV, ~1 run in 10; cause not found): run with `cargo test --lib dist:: -- --ignored`; tests/ranks.rs covers the shim with one process per rank"]
fn a_collective_whose_peer_never_calls_it_fails_within_its_timeout() {
    let out = two_ranks(Duration::from_secs(2), |g| {
        if g.rank() == 0 {
            let start = Instant::now();
            let x = Tensor::from_slice(&[1.0f32]);
            let err = g.all_reduce_sum(&[&x]).err().map(|e| format!("{e:#}"));
            (err, start.elapsed())
        } else {
            // rank 1 stays in the group (no collective) until rank 0 has given up
            std::thread::sleep(Duration::from_secs(4));
            (None, Duration::ZERO)
        }
    });
    let (err, took) = &out[0];
    let err = err.as_deref().expect("rank 1 never all-reduces");
    assert!(err.starts_with("all-reduce across ranks: "), "{err}");
    assert!(*took < Duration::from_secs(4), "waited {took:?}");
}

#[test]
#[ignore = "two c10d groups in one process (two threads) crash it now and then (SIGSEGV, ~1 run in 10; cause not found): run with `cargo test --lib dist:: -- --ignored`; tests/ranks.rs covers the shim with one process per rank"]
fn a_cpp_exception_comes_back_as_a_message() {
    let out = two_ranks(Duration::from_secs(30), |g| {
        let t = Tensor::from_slice(&[1.0f32]);
        let err = g.broadcast(&[&t], 5).unwrap_err().to_string();
        let gathered = g.all_gather(&t).map(|o| o.size());
        (err, gathered.unwrap())
    });
    for (err, shape) in out {
        assert!(
            err.contains("root rank 5 is not a rank of this group of 2"),
            "{err}"
        );
        // the group is still usable after the error
        assert_eq!(shape, vec![2, 1]);
    }
}
