using Skiff.Reconcile;

namespace Skiff.Tests.Reconcile;

/// <summary>The lock between rollouts (shared use leases) and GC deletions (excluding leases, not each other).</summary>
public sealed class ImageEngineLockTests
{
    private static readonly TimeSpan Short = TimeSpan.FromMilliseconds(200);

    [Fact]
    public async Task Deletion_waits_for_every_use_lease_and_the_leased_images_are_in_use_meanwhile()
    {
        var engineLock = new ImageEngineLock();
        var a = await engineLock.EnterUseAsync(["acme/api:2"], CancellationToken.None);
        var b = await engineLock.EnterUseAsync(["postgres:16"], CancellationToken.None);
        Assert.Equal(["acme/api:2", "postgres:16"], engineLock.InUseNow().Order());

        var removal = engineLock.EnterRemovalAsync(CancellationToken.None);
        await Task.Delay(Short);
        Assert.False(removal.IsCompleted);
        a.Dispose();
        await Task.Delay(Short);
        Assert.False(removal.IsCompleted);
        b.Dispose();
        (await removal.WaitAsync(TimeSpan.FromSeconds(5))).Dispose();
        Assert.Empty(engineLock.InUseNow());
    }

    [Fact]
    public async Task Rollout_waits_only_for_the_deletion_under_way()
    {
        var engineLock = new ImageEngineLock();
        var removal = await engineLock.EnterRemovalAsync(CancellationToken.None);
        var lease = engineLock.EnterUseAsync(["acme/api:2"], CancellationToken.None);
        var nextRemoval = engineLock.EnterRemovalAsync(CancellationToken.None);
        await Task.Delay(Short);
        Assert.False(lease.IsCompleted);

        removal.Dispose();

        // The waiting rollout goes before the next deletion.
        using (await lease.WaitAsync(TimeSpan.FromSeconds(5)))
        {
            await Task.Delay(Short);
            Assert.False(nextRemoval.IsCompleted);
        }

        (await nextRemoval.WaitAsync(TimeSpan.FromSeconds(5))).Dispose();
    }

    [Fact]
    public async Task Deletions_share_the_lock_and_a_rollout_waits_for_all_of_them()
    {
        var engineLock = new ImageEngineLock();
        var first = await engineLock.EnterRemovalAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5));
        var second = await engineLock.EnterRemovalAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5));
        var lease = engineLock.EnterUseAsync(["acme/api:2"], CancellationToken.None);
        var third = engineLock.EnterRemovalAsync(CancellationToken.None);

        first.Dispose();
        await Task.Delay(Short);
        Assert.False(lease.IsCompleted);
        Assert.False(third.IsCompleted); // queued behind the waiting rollout, not let in beside the second deletion

        second.Dispose();
        using (await lease.WaitAsync(TimeSpan.FromSeconds(5)))
        {
            await Task.Delay(Short);
            Assert.False(third.IsCompleted);
        }

        (await third.WaitAsync(TimeSpan.FromSeconds(5))).Dispose();
        Assert.Equal(0, engineLock.Leases);
    }

    [Fact]
    public async Task Cancelled_wait_leaves_the_lock_usable()
    {
        var engineLock = new ImageEngineLock();
        var lease = await engineLock.EnterUseAsync(["a:1"], CancellationToken.None);
        using var cts = new CancellationTokenSource(Short);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => engineLock.EnterRemovalAsync(cts.Token));
        lease.Dispose();
        lease.Dispose(); // idempotent
        Assert.Equal(0, engineLock.Leases);
        (await engineLock.EnterRemovalAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5))).Dispose();
    }
}
