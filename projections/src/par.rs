//! Work on every core, results in order: what the index build and the reports share.

/// `f` over `items` on every core, the results in `items`' order. Each thread makes its
/// own state with `init` (a cache of group folds, say). Threads take small runs of items
/// as they go (items differ in cost: a leaver with ten years of history, one with a
/// week), so none waits on another at the end. For the reports' rows, and for a caller
/// formatting them.
pub fn par_map<I: Sync, S, T: Send>(
    items: &[I],
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, &I) -> T + Sync,
) -> Vec<T> {
    const RUN: usize = 16;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.min(items.len().div_ceil(RUN)).max(1);
    if threads == 1 {
        let mut state = init();
        return items.iter().map(|i| f(&mut state, i)).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (init, f, next) = (&init, &f, &next);
    let done: Vec<Vec<(usize, Vec<T>)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(move || {
                    let mut state = init();
                    let mut out = Vec::new();
                    loop {
                        let at = next.fetch_add(RUN, std::sync::atomic::Ordering::Relaxed);
                        if at >= items.len() {
                            break;
                        }
                        let run = &items[at..(at + RUN).min(items.len())];
                        out.push((at, run.iter().map(|i| f(&mut state, i)).collect()));
                    }
                    out
                })
            })
            .collect();
        // A worker that panicked carries its panic on (there is no answer without it).
        workers.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    });
    let mut runs: Vec<(usize, Vec<T>)> = done.into_iter().flatten().collect();
    runs.sort_unstable_by_key(|(at, _)| *at);
    runs.into_iter().flat_map(|(_, results)| results).collect()
}
