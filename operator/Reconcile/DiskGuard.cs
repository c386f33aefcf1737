namespace Skiff.Reconcile;

/// <summary>
/// Raised when disk usage stays at or above the high threshold after a GC pass (DESIGN §4): every
/// AppDeployment of the node then carries <c>DiskPressure=True</c> and new rollouts wait, because a
/// full disk must never again stop PostgreSQL. Cleared as soon as usage is below the high threshold.
/// </summary>
public sealed class DiskGuard
{
    private readonly Lock gate = new();
    private (bool Raised, string Message) state = (false, "");

    /// <summary>Called (outside any lock) when the guard is raised or cleared, with the new state; sources requeue their resources.</summary>
    public event Action<bool>? Changed;

    public bool IsRaised
    {
        get
        {
            lock (gate)
            {
                return state.Raised;
            }
        }
    }

    /// <summary>Why it is raised (usage and what GC could not free), or why it was last cleared.</summary>
    public string Message
    {
        get
        {
            lock (gate)
            {
                return state.Message;
            }
        }
    }

    public void Raise(string message) => Set(true, message);

    public void Clear(string message) => Set(false, message);

    private void Set(bool raised, string message)
    {
        bool changed;
        lock (gate)
        {
            changed = state.Raised != raised;
            state = (raised, message);
        }

        if (changed)
        {
            Changed?.Invoke(raised);
        }
    }
}
