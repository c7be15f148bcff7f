import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The process groups of running renderers, for stopping them all (Ctrl-C) and the hard stop on a second Ctrl-C.
final class GroupRegistry: @unchecked Sendable {
    private let lock = NSLock()
    private var groups = Set<Int32>()
    func add(_ g: Int32) { _ = lock.withLock { groups.insert(g) } }
    func remove(_ g: Int32) { _ = lock.withLock { groups.remove(g) } }
    func signalAll(_ sig: Int32) { for g in lock.withLock({ groups }) { ProcFS.signalGroup(g, sig) } }
    func killAll() { signalAll(SIGKILL) }
}
