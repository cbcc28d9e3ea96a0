//! bf16 products on Intel AMX tiles (`tdpbf16ps`), for CPUs that have them (Sapphire
//! Rapids and later).
//!
//! Why AMX and not only `vdpbf16ps`: on the Xeon this project is measured on, `vdpbf16ps`
//! runs at half the rate of `vfmadd231ps` per FLOP (measured: ~100 vs ~200 GFLOP/s on one
//! core), so AVX-512 BF16 alone cannot make scoring faster than f32 once it is bound by
//! arithmetic; one `tdpbf16ps` multiplies a 16 x 32 tile by a 32 x 16 tile (8,192
//! multiply-adds) and the tile unit sustains ~3 TFLOP/s on one core.
//!
//! The tile instructions are written with `asm!` (stable), because Rust's AMX intrinsics
//! are not. Tiles are per-thread state: each thread loads the one configuration used here
//! (every tile 16 rows x 64 bytes) before its first product. Linux hands AMX state to a
//! process only after `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, asked once.
//!
//! Operands: activations as rows of bf16 pairs (one 32-bit word per pair), rows padded to
//! whole tiles of 16 with zeros; weights in the pair layout of [`super::bf16`] (a tile of
//! 16 pairs x 16 columns of one panel is 1 KiB, contiguous), which is exactly the "VNNI"
//! layout `tdpbf16ps` wants for its second operand.

#![allow(unsafe_code)] // Tile instructions and the permission system call.

use std::arch::asm;
use std::cell::Cell;
use std::sync::OnceLock;

use super::packed::NR;

/// Pairs of inputs per tile: 64 bytes of bf16 per tile row.
pub(crate) const TK: usize = 16;
/// Rows per tile.
pub(crate) const TM: usize = 16;

/// Whether this CPU and kernel let this process use AMX-BF16 (asked once, then cached).
pub fn available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| cpu_has_amx_bf16() && request_permission())
}

fn cpu_has_amx_bf16() -> bool {
    // CPUID leaf 7, sub-leaf 0, EDX: bit 22 AMX-BF16, bit 24 AMX-TILE.
    let leaf = std::arch::x86_64::__cpuid_count(7, 0);
    leaf.edx & (1 << 22) != 0 && leaf.edx & (1 << 24) != 0
}

#[cfg(target_os = "linux")]
fn request_permission() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a plain system call with integer arguments; it only changes which xsave
    // features the kernel lets this process use.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn request_permission() -> bool {
    false
}

thread_local! {
    static CONFIGURED: Cell<bool> = const { Cell::new(false) };
}

/// The tile configuration: palette 1, tiles 0-7 of 16 rows x 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

fn configure() {
    if CONFIGURED.get() {
        return;
    }
    let mut c = TileConfig([0; 64]);
    c.0[0] = 1;
    for t in 0..8 {
        c.0[16 + 2 * t] = 64; // bytes per row (u16, little-endian)
        c.0[48 + t] = TM as u8; // rows
    }
    // SAFETY: `available()` held when this product was packed; the configuration is a valid
    // palette-1 layout and lives through the instruction.
    unsafe { asm!("ldtilecfg [{c}]", c = in(reg) c.0.as_ptr(), options(nostack, readonly)) };
    CONFIGURED.set(true);
}

/// `y[r, ..panels * NR] = act(x[r] W^T)` for `r < rows`: `x` holds `rows` rounded to a
/// multiple of [`TM`] rows of `pairs` words (zero beyond the real rows and inputs), `w`
/// the packed pairs (`pairs` a multiple of [`TK`]). Products of 16 rows x 3 panels at a
/// time: tiles 0-2 accumulate, 3 holds the activations, 4-6 the weights.
///
/// # Safety
/// [`available`] must hold, and the slices must be as described.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn matmul(
    x: &[f32],
    pairs: usize,
    rows: usize,
    w: &[u16],
    panels: usize,
    y: &mut [f32],
    ys: usize,
    relu: bool,
) {
    debug_assert!(pairs.is_multiple_of(TK) && x.len() >= rows.next_multiple_of(TM) * pairs);
    debug_assert!(w.len() >= panels * pairs * NR * 2);
    configure();
    let x_stride = pairs * 4; // bytes per activation row
    let panel_bytes = pairs * NR * 2 * 2;
    let w_base = w.as_ptr().cast::<u8>();
    let mut out = [0f32; TM * NR];
    for r0 in (0..rows).step_by(TM) {
        let x_rows = x[r0 * pairs..].as_ptr().cast::<u8>();
        let valid = (rows - r0).min(TM);
        let mut p0 = 0;
        while p0 < panels {
            let group = (panels - p0).min(3);
            let wp = w_base.wrapping_add(p0 * panel_bytes);
            // SAFETY: every tile row read lies inside `x` (whole tiles of rows, `pairs`
            // words each) or inside the `group` panels of `w` (TK pairs x NR columns x 2
            // bf16 = 64 bytes per tile row, 1 KiB per tile); tiles are configured.
            unsafe { run_group(group, x_rows, x_stride, wp, panel_bytes, pairs / TK) };
            for g in 0..group {
                // SAFETY: tile `g` holds 16 rows x 64 bytes; `out` is 1 KiB.
                unsafe { store(g, out.as_mut_ptr()) };
                for r in 0..valid {
                    let dst = &mut y[(r0 + r) * ys + (p0 + g) * NR..][..NR];
                    let src = &out[r * NR..(r + 1) * NR];
                    if relu {
                        for (d, &s) in dst.iter_mut().zip(src) {
                            // 0 for NaN too, like the scalar ReLU.
                            *d = if s > 0.0 { s } else { 0.0 };
                        }
                    } else {
                        dst.copy_from_slice(src);
                    }
                }
            }
            p0 += group;
        }
    }
}

/// Zeroes the accumulators and runs the reduction of one group of 1-3 panels.
///
/// # Safety
/// As for [`matmul`]: `x_rows` starts 16 readable rows of `x_stride` bytes, `wp` starts
/// `group` panels of `panel_bytes` bytes, each at least `k_tiles` KiB.
unsafe fn run_group(
    group: usize,
    x_rows: *const u8,
    x_stride: usize,
    wp: *const u8,
    panel_bytes: usize,
    k_tiles: usize,
) {
    // SAFETY (all blocks): per the contract above; tile registers are not touched by
    // compiled code, so state carries from one block to the next.
    unsafe {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            options(nostack, nomem)
        );
        for kt in 0..k_tiles {
            let a = x_rows.wrapping_add(kt * TK * 4);
            let b0 = wp.wrapping_add(kt * 1024);
            let b1 = b0.wrapping_add(panel_bytes);
            let b2 = b1.wrapping_add(panel_bytes);
            match group {
                3 => asm!(
                    "tileloadd tmm3, [{a} + {xs}*1]",
                    "tileloadd tmm4, [{b0} + {ws}*1]",
                    "tileloadd tmm5, [{b1} + {ws}*1]",
                    "tileloadd tmm6, [{b2} + {ws}*1]",
                    "tdpbf16ps tmm0, tmm3, tmm4",
                    "tdpbf16ps tmm1, tmm3, tmm5",
                    "tdpbf16ps tmm2, tmm3, tmm6",
                    a = in(reg) a, xs = in(reg) x_stride, b0 = in(reg) b0, b1 = in(reg) b1,
                    b2 = in(reg) b2, ws = in(reg) 64usize, options(nostack, readonly),
                ),
                2 => asm!(
                    "tileloadd tmm3, [{a} + {xs}*1]",
                    "tileloadd tmm4, [{b0} + {ws}*1]",
                    "tileloadd tmm5, [{b1} + {ws}*1]",
                    "tdpbf16ps tmm0, tmm3, tmm4",
                    "tdpbf16ps tmm1, tmm3, tmm5",
                    a = in(reg) a, xs = in(reg) x_stride, b0 = in(reg) b0, b1 = in(reg) b1,
                    ws = in(reg) 64usize, options(nostack, readonly),
                ),
                _ => asm!(
                    "tileloadd tmm3, [{a} + {xs}*1]",
                    "tileloadd tmm4, [{b0} + {ws}*1]",
                    "tdpbf16ps tmm0, tmm3, tmm4",
                    a = in(reg) a, xs = in(reg) x_stride, b0 = in(reg) b0,
                    ws = in(reg) 64usize, options(nostack, readonly),
                ),
            }
        }
    }
}

/// Stores accumulator tile `t` (0-2) as 16 rows x 16 f32 into `out`.
///
/// # Safety
/// `out` must hold 256 floats; tiles configured.
unsafe fn store(t: usize, out: *mut f32) {
    // SAFETY: per the contract above.
    unsafe {
        match t {
            0 => {
                asm!("tilestored [{o} + {s}*1], tmm0", o = in(reg) out, s = in(reg) 64usize, options(nostack))
            }
            1 => {
                asm!("tilestored [{o} + {s}*1], tmm1", o = in(reg) out, s = in(reg) 64usize, options(nostack))
            }
            _ => {
                asm!("tilestored [{o} + {s}*1], tmm2", o = in(reg) out, s = in(reg) 64usize, options(nostack))
            }
        }
    }
}
