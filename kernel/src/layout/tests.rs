//! The layout table's host tests (the checks the const asserts cannot make).
use super::*;

#[test]
fn linux_sizes() {
    assert_eq!(THREAD_SIZE, 16384);
    assert_eq!(IRQ_STACK_SIZE, 16384);
    assert_eq!(EXCEPTION_STKSZ, 8192);
}

#[test]
fn exception_stacks_follow_linux_order_with_a_guard_below_each() {
    let k = |o: u64| o / 1024;
    // DF_guard, DF, NMI_guard, NMI, DB2_guard, DB2(0), DB1_guard, DB1, DB_guard, DB, MCE_guard, MCE,
    // then the #PF stacks of dynamic thread stacks in #DB's pattern, top guard
    assert_eq!(
        [EStack::DF, EStack::NMI, EStack::DB2, EStack::DB1, EStack::DB, EStack::MCE].map(|e| k(e.offset())),
        [4, 16, 28, 32, 44, 56]
    );
    assert_eq!([EStack::PF2, EStack::PF1, EStack::PF, EStack::ENTRY].map(|e| k(e.offset())), [68, 72, 84, 96]);
    assert_eq!(CEA_PER_CPU_SIZE, 104 * 1024);
    assert_eq!(Ist::PF.tss_slot(), 4);
    assert_eq!(DB_STACK_OFFSET, 12 * 1024);
    assert_eq!(Ist::DF.tss_slot(), 0);
    assert_eq!(Ist::MCE.tss_slot(), 3);
}

#[test]
fn classify_finds_stacks_guards_and_the_db2_hole() {
    let (db_bottom, db_top) = estack_range(1, EStack::DB);
    assert_eq!(classify_cea(db_top - 8), Some((1, EStack::DB, CeaPart::Stack)));
    assert_eq!(classify_cea(db_bottom - 1), Some((1, EStack::DB, CeaPart::GuardBelow)));
    // A third nested #DB pushes just below the top of the DB2 hole.
    let db2_top = db_top - 2 * DB_STACK_OFFSET;
    assert_eq!(classify_cea(db2_top - 8), Some((1, EStack::DB2, CeaPart::GuardBelow)));
    // The top guard and the slack after it are nobody's.
    let (_, pf_top) = estack_range(1, EStack::PF);
    assert_eq!(classify_cea(pf_top), Some((1, EStack::ENTRY, CeaPart::GuardBelow)));
    let (_, entry_top) = estack_range(1, EStack::ENTRY);
    assert_eq!(classify_cea(entry_top), None);
    assert_eq!(classify_cea(pf_top - 2 * PF_STACK_OFFSET - 8), Some((1, EStack::PF2, CeaPart::GuardBelow)));
    assert_eq!(classify_cea(cea_base(1) + CEA_STRIDE - 8), None);
    assert_eq!(classify_cea(CPU_ENTRY_AREA_BASE - 8), None);
    assert_eq!(classify_cea(cea_base(MAX_CPUS)), None);
    assert_eq!(EStack::DB2.name(), "#DB2");
}

#[test]
fn addresses_find_their_region() {
    assert_eq!(region_of(VMAP_BASE + 5).unwrap().name, "vmap area");
    assert_eq!(region_of(0xffff_ffff_8000_1234).unwrap().name, "kernel image");
    assert_eq!(region_of(0xffff_ffff_ffff_fff0).unwrap().name, "kernel image");
    assert!(region_of(0x1000).is_none());
}
