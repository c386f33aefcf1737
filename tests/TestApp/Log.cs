namespace Skiff.TestApp;

/// <summary>One line per event on stdout, as container logs expect.</summary>
internal static class Log
{
    public static void Line(string message) =>
        Console.Out.WriteLine($"{DateTimeOffset.UtcNow:yyyy-MM-ddTHH:mm:ss.fffZ} {message}");
}
