using System.Globalization;
using System.Text;
using Skiff.Docker;
using Skiff.Reconcile;

namespace Skiff.Cli;

/// <summary>
/// <c>skiff run --once</c> on a terminal: one live line per image being pulled, bytes done of the total, redrawn
/// in place below the log as <c>docker pull</c> draws them. A finished pull leaves one permanent line.
/// </summary>
/// <remarks>
/// # Guarantees
/// - Log lines and the live block never overwrite each other: the log is written through <see cref="Writer"/>,
///   which lifts the block, writes the line, and draws the block again below it.
/// - Only used when standard error is a terminal; anywhere else the pulls are in the log only (<see cref="PullLog"/>).
/// </remarks>
public sealed class LivePulls : IPullListener, IDisposable
{
    private static readonly TimeSpan RedrawInterval = TimeSpan.FromMilliseconds(100);
    private readonly TextWriter terminal;
    private readonly Lock gate = new();
    private readonly List<(string Key, string Line)> live = [];
    private readonly StringBuilder pending = new();
    private readonly TimeProvider time;
    private int drawn;
    private DateTimeOffset lastDraw;

    public LivePulls(TextWriter terminal, TimeProvider? timeProvider = null)
    {
        this.terminal = terminal;
        time = timeProvider ?? TimeProvider.System;
        Writer = new LogWriter(this);
    }

    /// <summary>Whether standard error is a terminal that understands cursor movement.</summary>
    public static bool TerminalAvailable =>
        !Console.IsErrorRedirected && Environment.GetEnvironmentVariable("TERM") is { Length: > 0 } term && term != "dumb";

    /// <summary>What the log must write through while the display is up (it replaces standard error).</summary>
    public TextWriter Writer { get; }

    public void Started(string stack, string image) => Set(stack, image, $"{image}: Pulling", force: true);

    public void Progress(string stack, PullProgress progress) =>
        Set(stack, progress.Image, Line(progress), force: false);

    public void Finished(PullResult result)
    {
        var seconds = result.Duration.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture);
        var line = result.Result == PullResults.Success
            ? $"{result.Image}: Pulled {PullLog.Bytes(result.Bytes)} in {seconds}s"
            : $"{result.Image}: Pull failed after {seconds}s ({result.Result})";
        lock (gate)
        {
            Lift();
            live.RemoveAll(l => l.Key == Key(result.Stack, result.Image));
            terminal.WriteLine(line);
            Draw();
        }
    }

    public void Dispose()
    {
        lock (gate)
        {
            if (pending.Length > 0)
            {
                Lift();
                terminal.Write(pending.ToString());
                pending.Clear();
                Draw();
            }

            terminal.Flush();
        }
    }

    /// <summary>The line of a pull in progress: <c>IMAGE: Downloading [=====>      ] 12.3MB/45.6MB (3/7 layers)</c>.</summary>
    public static string Line(PullProgress p)
    {
        if (p.Total <= 0)
        {
            return $"{p.Image}: Pulling ({p.LayersDone}/{p.Layers} layers)";
        }

        const int width = 30;
        var filled = (int)Math.Clamp(p.Done * width / p.Total, 0, width);
        var bar = new string('=', Math.Max(0, filled - 1)) + (filled > 0 ? ">" : "") + new string(' ', width - filled);
        return $"{p.Image}: Downloading [{bar}] {PullLog.Bytes(p.Done)}/{PullLog.Bytes(p.Total)} ({p.LayersDone}/{p.Layers} layers)";
    }

    private static string Key(string stack, string image) => stack + " " + image;

    private void Set(string stack, string image, string line, bool force)
    {
        lock (gate)
        {
            var key = Key(stack, image);
            var i = live.FindIndex(l => l.Key == key);
            if (i < 0)
            {
                live.Add((key, line));
            }
            else
            {
                live[i] = (key, line);
            }

            var now = time.GetUtcNow();
            if (force || now - lastDraw >= RedrawInterval)
            {
                Lift();
                Draw();
            }
        }
    }

    /// <summary>Erases the live block (the cursor is at its end): up to its first line, clear to the end of the screen.</summary>
    private void Lift()
    {
        if (drawn > 0)
        {
            terminal.Write($"\u001b[{drawn.ToString(CultureInfo.InvariantCulture)}F\u001b[J");
            drawn = 0;
        }
    }

    private void Draw()
    {
        foreach (var (_, line) in live)
        {
            terminal.Write(line);
            terminal.Write('\n');
        }

        drawn = live.Count;
        lastDraw = time.GetUtcNow();
        terminal.Flush();
    }

    /// <summary>Takes whole log lines: each goes above the live block.</summary>
    private void Log(string text)
    {
        lock (gate)
        {
            pending.Append(text);
            var end = pending.ToString().LastIndexOf('\n');
            if (end < 0)
            {
                return;
            }

            var lines = pending.ToString(0, end + 1);
            pending.Remove(0, end + 1);
            Lift();
            terminal.Write(lines);
            Draw();
        }
    }

    private sealed class LogWriter(LivePulls owner) : TextWriter
    {
        public override Encoding Encoding => Encoding.UTF8;

        public override void Write(char value) => owner.Log(value.ToString());

        public override void Write(string? value)
        {
            if (value is { Length: > 0 })
            {
                owner.Log(value);
            }
        }

        public override void Write(char[] buffer, int index, int count) => owner.Log(new string(buffer, index, count));

        public override void Flush()
        {
        }
    }
}

/// <summary>Replaces standard error for a while (the live display's log writer), and puts the old one back.</summary>
public static class ConsoleError
{
    public static IDisposable Replace(TextWriter writer)
    {
        var original = Console.Error;
        Console.SetError(writer);
        return new Restore(original);
    }

    private sealed class Restore(TextWriter original) : IDisposable
    {
        public void Dispose() => Console.SetError(original);
    }
}
