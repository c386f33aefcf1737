using System.Runtime.CompilerServices;

namespace Skiff.Tests;

/// <summary>
/// The tests decode Skiff's resources as <c>skiff</c> does: with the generated metadata registered in KubernetesClient's
/// options before anything uses them (Program.cs does it first thing).
/// </summary>
internal static class KubeJsonRegistration
{
    [ModuleInitializer]
    internal static void Register() => Skiff.Sources.Kubernetes.KubeJson.Register();
}
