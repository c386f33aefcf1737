using BenchmarkDotNet.Running;

namespace Skiff.Bench;

/// <summary>Runs the benchmarks chosen with <c>--filter</c>, e.g. <c>--filter '*Gc*'</c>.</summary>
public static class Program
{
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
