package gitops

// SetBeforePush lets a test push from another writer between this driver's
// fetch and its push, which is the race a non-fast-forward rejection is.
func SetBeforePush(d *Driver, f func()) { d.beforePush = f }
