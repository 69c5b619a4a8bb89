//! Histogram samples recorded while nobody scrapes `/metrics` are drained by the upkeep instead
//! of piling up. The test counts the heap bytes this test binary holds, so it is the only test
//! in its binary (nothing else allocates meanwhile).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusBuilder;

/// The system allocator, counting the bytes live at any time.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

#[test]
fn histogram_samples_nobody_scrapes_are_held_until_the_upkeep_drains_them() {
    const SAMPLES: usize = 200_000;
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let latency = metrics::with_local_recorder(
        &recorder,
        || metrics::histogram!("kan_test_duration_seconds", "queue" => "q"),
    );
    latency.record(0.001);
    let before = live();

    for _ in 0..SAMPLES {
        latency.record(0.001);
    }
    let held = live() - before;
    assert!(
        held >= (SAMPLES * 16) as isize,
        "without a scrape or upkeep every sample stays in memory: {held} bytes for {SAMPLES}"
    );

    kan_http::spawn_upkeep(handle.clone(), Duration::from_millis(20)).expect("upkeep thread");
    // Light traffic goes on meanwhile, as it would in a server.
    let until = Instant::now() + Duration::from_secs(20);
    let mut left = held;
    while Instant::now() < until {
        latency.record(0.001);
        left = live() - before;
        if left < held / 10 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        left < held / 10,
        "the upkeep gave the samples' memory back: {left} of {held} bytes still held"
    );
    let rendered = handle.render();
    let count: usize = rendered
        .lines()
        .find_map(|l| l.strip_prefix("kan_test_duration_seconds_count{queue=\"q\"} "))
        .and_then(|n| n.trim().parse().ok())
        .expect("a count line");
    assert!(
        count > SAMPLES,
        "the drained samples are still counted: {count}"
    );
}
