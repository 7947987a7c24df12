//! ACPI tables, read with the `acpi` crate through the direct map: where the
//! processors and I/O APICs are and how ISA IRQs map to their inputs (the MADT).

use alloc::vec::Vec;
use core::ptr::NonNull;

use acpi::platform::interrupt::{InterruptModel, Polarity, TriggerMode};
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};

use crate::layout::DIRECT_MAP_BASE;

/// Tables live in RAM, which the direct map covers: "mapping" is arithmetic.
#[derive(Clone, Copy)]
struct DirectMap;

impl AcpiHandler for DirectMap {
    unsafe fn map_physical_region<T>(&self, pa: usize, size: usize) -> PhysicalMapping<Self, T> {
        let va = NonNull::new((DIRECT_MAP_BASE + pa as u64) as *mut T).expect("direct map is never null");
        // SAFETY: the direct map maps [pa, pa + size) for as long as the kernel runs.
        unsafe { PhysicalMapping::new(pa, va, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// One I/O APIC.
#[derive(Clone, Copy, Debug)]
pub struct IoApicInfo {
    pub id: u8,
    pub address: u64,
    pub gsi_base: u32,
}

/// How an ISA IRQ reaches an I/O APIC input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IsaRoute {
    pub gsi: u32,
    pub active_low: bool,
    pub level: bool,
}

/// One processor's local APIC, as the MADT lists it.
#[derive(Clone, Copy, Debug)]
pub struct ProcessorEntry {
    pub apic_id: u32,
    /// Not marked disabled (Linux skips disabled entries too).
    pub usable: bool,
}

pub struct Madt {
    pub io_apics: Vec<IoApicInfo>,
    /// Every processor, the boot processor first.
    pub processors: Vec<ProcessorEntry>,
    overrides: Vec<(u8, IsaRoute)>,
}

impl Madt {
    /// ISA IRQ `irq`'s route: an interrupt source override, or identity,
    /// edge-triggered, active high (the ISA defaults).
    pub fn isa_route(&self, irq: u8) -> IsaRoute {
        self.overrides.iter().find(|(src, _)| *src == irq).map(|(_, r)| *r).unwrap_or(IsaRoute {
            gsi: u32::from(irq),
            active_low: false,
            level: false,
        })
    }
}

/// Read the MADT from the RSDP the bootloader found.
pub fn madt(rsdp: u64) -> Result<Madt, alloc::string::String> {
    // SAFETY: the bootloader handed us this RSDP address.
    let tables = unsafe { AcpiTables::from_rsdp(DirectMap, rsdp as usize) }.map_err(|e| alloc::format!("{e:?}"))?;
    let info = tables.platform_info().map_err(|e| alloc::format!("{e:?}"))?;
    let InterruptModel::Apic(apic) = info.interrupt_model else {
        return Err("the MADT describes no APIC".into());
    };
    let io_apics = apic
        .io_apics
        .iter()
        .map(|a| IoApicInfo { id: a.id, address: u64::from(a.address), gsi_base: a.global_system_interrupt_base })
        .collect();
    let overrides = apic
        .interrupt_source_overrides
        .iter()
        .map(|o| {
            let route = IsaRoute {
                gsi: o.global_system_interrupt,
                active_low: matches!(o.polarity, Polarity::ActiveLow),
                level: matches!(o.trigger_mode, TriggerMode::Level),
            };
            (o.isa_source, route)
        })
        .collect();
    let entry = |p: &acpi::platform::Processor| ProcessorEntry {
        apic_id: p.local_apic_id,
        usable: !matches!(p.state, acpi::platform::ProcessorState::Disabled),
    };
    let processors = info
        .processor_info
        .as_ref()
        .map(|pi| {
            core::iter::once(entry(&pi.boot_processor)).chain(pi.application_processors.iter().map(entry)).collect()
        })
        .unwrap_or_default();
    Ok(Madt { io_apics, processors, overrides })
}
