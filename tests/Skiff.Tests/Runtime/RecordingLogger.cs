using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Skiff.Tests.Runtime;

/// <summary>Keeps every log entry with the scopes active when it was written.</summary>
internal sealed class RecordingLogger<T> : ILogger<T>
{
    private readonly AsyncLocal<ImmutableScopes?> scopes = new();

    public ConcurrentQueue<Entry> Entries { get; } = new();

    public IDisposable BeginScope<TState>(TState state)
        where TState : notnull
    {
        var previous = scopes.Value;
        scopes.Value = new ImmutableScopes(state, previous);
        return new Pop(() => scopes.Value = previous);
    }

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        var properties = new Dictionary<string, object?>();
        for (var s = scopes.Value; s is not null; s = s.Parent)
        {
            if (s.State is IEnumerable<KeyValuePair<string, object?>> pairs)
            {
                foreach (var (k, v) in pairs)
                {
                    properties.TryAdd(k, v);
                }
            }
        }

        Entries.Enqueue(new Entry(logLevel, formatter(state, exception), exception, properties));
    }

    public IReadOnlyList<Entry> At(LogLevel level) => Entries.Where(e => e.Level == level).ToList();

    internal sealed record Entry(LogLevel Level, string Message, Exception? Exception, IReadOnlyDictionary<string, object?> Scope);

    private sealed record ImmutableScopes(object State, ImmutableScopes? Parent);

    private sealed class Pop(Action pop) : IDisposable
    {
        public void Dispose() => pop();
    }
}
