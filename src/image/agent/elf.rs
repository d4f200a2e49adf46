//! What a binary handed to `jobrun build` is, read from its bytes (it may be for another
//! architecture, so it cannot be run to ask): an ELF file for Linux of which architecture,
//! whether it needs a program interpreter (a dynamic loader the image may not have), or a
//! macOS or Windows executable, which never goes into a Linux image. And the mark every jobrun
//! carries (`jobrun_wire::wire::MARK`), which says the wire format it speaks, its version and
//! whether it is the slim agent.

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A 64-bit little-endian ELF executable; `arch` in Docker's spelling when it is one of
    /// jobrun's two, and whether it names a program interpreter (PT_INTERP): a dynamically
    /// linked binary that starts only where that loader and its libraries are.
    Elf {
        arch: Option<crate::config::Arch>,
        machine: u16,
        dynamic: bool,
    },
    MachO,
    Windows,
    Other,
}

impl Kind {
    pub fn of(bytes: &[u8]) -> Kind {
        match bytes {
            [0x7f, b'E', b'L', b'F', ..] => elf(bytes).unwrap_or(Kind::Other),
            [0xcf, 0xfa, 0xed, 0xfe, ..] | [0xfe, 0xed, 0xfa, 0xcf, ..] => Kind::MachO,
            [0xca, 0xfe, 0xba, 0xbe, ..] => Kind::MachO,
            [b'M', b'Z', ..] => Kind::Windows,
            _ => Kind::Other,
        }
    }

    /// For people: "a Linux arm64 binary", "a macOS (Mach-O) binary", …
    pub fn describe(&self) -> String {
        match self {
            Kind::Elf {
                arch: Some(a),
                dynamic,
                ..
            } => format!(
                "a Linux {a} binary{}",
                if *dynamic { ", linked dynamically" } else { "" }
            ),
            Kind::Elf { machine, .. } => format!("a Linux binary for machine type {machine}"),
            Kind::MachO => "a macOS (Mach-O) binary".into(),
            Kind::Windows => "a Windows binary".into(),
            Kind::Other => "not an executable".into(),
        }
    }
}

const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const PT_INTERP: u32 = 3;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The ELF header (e_machine at 18, e_phoff at 32, e_phentsize at 54, e_phnum at 56) and the
/// program headers' types, as the System V ABI lays them out for ELFCLASS64.
fn elf(b: &[u8]) -> Option<Kind> {
    if b.get(4) != Some(&ELFCLASS64) || b.get(5) != Some(&ELFDATA2LSB) {
        return Some(Kind::Elf {
            arch: None,
            machine: 0,
            dynamic: false,
        });
    }
    let machine = u16_at(b, 18)?;
    let arch = match machine {
        EM_X86_64 => Some(crate::config::Arch::Amd64),
        EM_AARCH64 => Some(crate::config::Arch::Arm64),
        _ => None,
    };
    let phoff = u64_at(b, 32)? as usize;
    let (size, count) = (u16_at(b, 54)? as usize, u16_at(b, 56)? as usize);
    let dynamic = (0..count).any(|i| u32_at(b, phoff + i * size) == Some(PT_INTERP));
    Some(Kind::Elf {
        arch,
        machine,
        dynamic,
    })
}

/// The mark a jobrun binary carries: `\0jobrun-in-aws:wire=<n>:version=<version>\0`, and
/// `:role=agent` before the last `\0` for the slim agent (`jobrun_wire::wire::MARK_AGENT`).
pub const MARK_PREFIX: &[u8] = b"\0jobrun-in-aws:wire=";

/// What a jobrun binary's mark says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub wire: u32,
    pub version: String,
    /// The slim agent (`jobrun-agent`): it runs tasks and queue workers, not the dispatcher.
    pub slim: bool,
}

/// The wire format and version a jobrun binary says it speaks, if it is a jobrun at all.
pub fn mark(bytes: &[u8]) -> Option<Mark> {
    memchr::memmem::find_iter(bytes, MARK_PREFIX).find_map(|at| {
        let rest = &bytes[at + MARK_PREFIX.len()..];
        let end = memchr::memchr(0, &rest[..rest.len().min(96)])?;
        let text = std::str::from_utf8(&rest[..end]).ok()?;
        let (wire, version) = text.split_once(":version=")?;
        let (version, slim) = match version.split_once(":role=") {
            Some((v, "agent")) => (v, true),
            Some(_) => return None,
            None => (version, false),
        };
        let ok = !version.is_empty()
            && version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        let wire = wire.parse().ok()?;
        ok.then(|| Mark {
            wire,
            version: version.to_string(),
            slim,
        })
    })
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A minimal ELF header for `machine`, with one program header of type `p_type`.
    pub fn fake_elf(machine: u16, p_type: u32) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = ELFCLASS64;
        b[5] = ELFDATA2LSB;
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&1u16.to_le_bytes());
        b[64..68].copy_from_slice(&p_type.to_le_bytes());
        b
    }

    #[test]
    fn elf_architecture_and_linking_are_read_from_the_header() {
        let k = Kind::of(&fake_elf(EM_AARCH64, 1));
        assert_eq!(
            k,
            Kind::Elf {
                arch: Some(crate::config::Arch::Arm64),
                machine: EM_AARCH64,
                dynamic: false
            }
        );
        let k = Kind::of(&fake_elf(EM_X86_64, PT_INTERP));
        assert!(matches!(
            k,
            Kind::Elf {
                arch: Some(crate::config::Arch::Amd64),
                dynamic: true,
                ..
            }
        ));
        assert_eq!(k.describe(), "a Linux amd64 binary, linked dynamically");
        assert!(matches!(
            Kind::of(&fake_elf(40, 1)),
            Kind::Elf { arch: None, .. }
        ));
    }

    #[test]
    fn never_a_binary_of_another_os() {
        assert_eq!(Kind::of(&[0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1]), Kind::MachO);
        assert_eq!(Kind::of(b"MZ\x90\0"), Kind::Windows);
        assert_eq!(Kind::of(b"#!/bin/sh\n"), Kind::Other);
        assert_eq!(Kind::of(b""), Kind::Other);
        assert_eq!(Kind::MachO.describe(), "a macOS (Mach-O) binary");
    }

    #[test]
    fn this_binary_is_read_as_what_it_is() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let Kind::Elf { arch, .. } = Kind::of(&me) else {
            panic!("the test binary is ELF on Linux")
        };
        assert_eq!(arch, Some(crate::config::Arch::host()));
    }

    #[test]
    fn the_mark_is_found_and_a_lookalike_is_not() {
        let mut b = b"junk\0jobrun-in-aws:wire=xyz\0more".to_vec();
        assert_eq!(mark(&b), None);
        b.extend_from_slice(b"\0jobrun-in-aws:wire=1:version=0.1.0\0tail");
        let full = |version: &str, slim| Mark {
            wire: 1,
            version: version.into(),
            slim,
        };
        assert_eq!(mark(&b), Some(full("0.1.0", false)));
        assert_eq!(mark(b"\0jobrun-in-aws:wire=1:version=\0"), None);
        let agent = b"\0jobrun-in-aws:wire=1:version=0.2.0:role=agent\0";
        assert_eq!(mark(agent), Some(full("0.2.0", true)));
        assert_eq!(mark(b"\0jobrun-in-aws:wire=1:version=0.2.0:role=x\0"), None);
        // The marks this workspace builds read as what they are.
        let wire = jobrun_wire::wire::MARK.as_bytes();
        assert_eq!(mark(wire), Some(full(env!("CARGO_PKG_VERSION"), false)));
        let slim = jobrun_wire::wire::MARK_AGENT.as_bytes();
        assert_eq!(mark(slim), Some(full(env!("CARGO_PKG_VERSION"), true)));
        assert_eq!(mark(b"nothing here"), None);
    }
}
