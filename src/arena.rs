//! sentinit's memory allocator: small blocks from one static arena, a free list per size class.
//!
//! Why not the C library's: musl's allocator (mallocng) gives each size class pages of its own and
//! maps and unmaps them one at a time as sentinit's few hundred start-up allocations come and go.
//! Measured before this module: about 50 mmap/munmap calls and 20 page faults before the workload
//! runs, and 36 KiB of private memory while supervising, for a heap whose live size is a few KiB.
//!
//! sentinit's heap is small and bounded (nothing it keeps grows with the workload beyond fixed caps,
//! see processes.rs), so here every block of up to [`LARGEST`] bytes is carved from one arena, back to
//! back, and goes to a free list of its power-of-two class when freed, for the next block of that
//! class. The arena is one anonymous mapping made at the first allocation: its address is randomized
//! like any mmap (the binary itself is not position-independent, see .cargo/config.toml), and pages
//! never reached cost nothing. Larger blocks, blocks aligned to more than 16 bytes, and everything once
//! the arena is used up (or could not be mapped) go to the C library.
//!
//! Threads: sentinit has a few short-lived ones (the ECS resolver, the report file, the termination
//! message), so a spin lock held for a few instructions is enough.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The arena's size: room for several times what sentinit uses at its peak.
const ARENA_BYTES: usize = 256 * 1024;
/// The smallest class: every block is aligned to it.
const SMALLEST: usize = 16;
/// The largest block served from the arena.
const LARGEST: usize = 4096;
/// Classes 16, 32, ... 4096.
const CLASSES: usize = (LARGEST / SMALLEST).trailing_zeros() as usize + 1;

struct State {
    /// The mapping, made at the first allocation; null before, or when mmap failed.
    base: *mut u8,
    /// Set once the mapping was tried.
    mapped: bool,
    /// Offset of the first byte never handed out.
    next: usize,
    /// Per class, the most recently freed block (its first word links to the one before), or null.
    free: [*mut u8; CLASSES],
}

pub struct Arena {
    locked: AtomicBool,
    /// The mapping's address once made (0 before): read without the lock by `contains`.
    start: AtomicUsize,
    state: UnsafeCell<State>,
}

// SAFETY: `state` is only touched with `locked` held, and each block of the mapping belongs to one
// owner at a time, as the GlobalAlloc contract says.
unsafe impl Sync for Arena {}

impl Arena {
    pub const fn new() -> Arena {
        Arena {
            locked: AtomicBool::new(false),
            start: AtomicUsize::new(0),
            state: UnsafeCell::new(State {
                base: std::ptr::null_mut(),
                mapped: false,
                next: 0,
                free: [std::ptr::null_mut(); CLASSES],
            }),
        }
    }

    /// The class of a layout the arena serves, or None.
    fn class(layout: Layout) -> Option<usize> {
        if layout.size() > LARGEST || layout.align() > SMALLEST {
            return None;
        }
        let rounded = layout.size().max(SMALLEST).next_power_of_two();
        Some((rounded / SMALLEST).trailing_zeros() as usize)
    }

    fn contains(&self, ptr: *mut u8) -> bool {
        let start = self.start.load(Ordering::Acquire);
        start != 0 && (start..start + ARENA_BYTES).contains(&(ptr as usize))
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        while self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            std::hint::spin_loop();
        }
        // SAFETY: the lock is held, so this is the only reference to the state.
        let result = f(unsafe { &mut *self.state.get() });
        self.locked.store(false, Ordering::Release);
        result
    }

    /// A block of class `class` from the arena, or null when it is used up.
    fn take(&self, class: usize) -> *mut u8 {
        self.with_state(|state| {
            if !state.mapped {
                state.mapped = true;
                // SAFETY: a new private anonymous mapping, touching nothing that exists.
                let base = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        ARENA_BYTES,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                        -1,
                        0,
                    )
                };
                if base != libc::MAP_FAILED {
                    state.base = base.cast();
                    self.start.store(base as usize, Ordering::Release);
                }
            }
            let base = state.base;
            if base.is_null() {
                return std::ptr::null_mut();
            }
            let head = state.free[class];
            if !head.is_null() {
                // SAFETY: a freed block of this class holds the link written by `give_back`.
                state.free[class] = unsafe { *(head as *mut *mut u8) };
                return head;
            }
            let size = SMALLEST << class;
            if state.next + size > ARENA_BYTES {
                return std::ptr::null_mut();
            }
            // SAFETY: next + size is within the arena, checked above.
            let block = unsafe { base.add(state.next) };
            state.next += size;
            block
        })
    }

    fn give_back(&self, ptr: *mut u8, class: usize) {
        self.with_state(|state| {
            // SAFETY: the block is at least 16 bytes, 16-aligned and no longer anyone's.
            unsafe { *(ptr as *mut *mut u8) = state.free[class] };
            state.free[class] = ptr;
        })
    }
}

impl Default for Arena {
    fn default() -> Arena {
        Arena::new()
    }
}

// SAFETY: blocks are handed out once until given back; each is at least the layout's size (its class
// rounds the size up to a power of two of at least 16) and 16-aligned (every class size is a multiple
// of 16 from a page-aligned mapping), which is all the alignment the arena accepts.
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if let Some(class) = Arena::class(layout) {
            let block = self.take(class);
            if !block.is_null() {
                return block;
            }
        }
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match Arena::class(layout) {
            Some(class) if self.contains(ptr) => self.give_back(ptr, class),
            // SAFETY: a block outside the arena came from System with this layout.
            _ => unsafe { System.dealloc(ptr, layout) },
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.contains(ptr) {
            // SAFETY: a block outside the arena came from System with this layout.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: GlobalAlloc's contract: new_size is non-zero and valid with the layout's alignment.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if Arena::class(new_layout) == Arena::class(layout) {
            return ptr;
        }
        // SAFETY: a fresh block for the new layout; the old one is valid for layout.size() bytes.
        unsafe {
            let moved = self.alloc(new_layout);
            if !moved.is_null() {
                std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            moved
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_reused_aligned_and_large_ones_go_elsewhere() {
        let arena = Box::leak(Box::new(Arena::new()));
        assert!(!arena.contains(std::ptr::null_mut()), "nothing is in an arena not mapped yet");
        let small = Layout::from_size_align(24, 8).unwrap();
        unsafe {
            let a = arena.alloc(small);
            let b = arena.alloc(small);
            assert!(arena.contains(a) && arena.contains(b) && a != b);
            assert_eq!(a as usize % 16, 0);
            arena.dealloc(a, small);
            assert_eq!(arena.alloc(small), a, "a freed block is the next one of its class");
            let big = Layout::from_size_align(LARGEST + 1, 8).unwrap();
            let c = arena.alloc(big);
            assert!(!arena.contains(c));
            arena.dealloc(c, big);
            let grown = arena.realloc(b, small, 31);
            assert_eq!(grown, b, "same class: in place");
            *grown.add(30) = 7;
            let moved = arena.realloc(grown, Layout::from_size_align(31, 8).unwrap(), 100);
            assert_eq!(*moved.add(30), 7);
        }
    }

    #[test]
    fn a_used_up_arena_falls_back() {
        let arena = Box::leak(Box::new(Arena::new()));
        let page = Layout::from_size_align(LARGEST, 16).unwrap();
        let blocks: Vec<*mut u8> = (0..ARENA_BYTES / LARGEST + 1).map(|_| unsafe { arena.alloc(page) }).collect();
        assert!(blocks[..ARENA_BYTES / LARGEST].iter().all(|b| arena.contains(*b)));
        assert!(!arena.contains(*blocks.last().unwrap()) && !blocks.last().unwrap().is_null());
    }
}
