using System.Globalization;
using System.Reflection;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using CsCheck;
using k8s.Models;
using Skiff.Api;
using Skiff.Reconcile;
using Skiff.Validation;

namespace Skiff.Tests.Resources;

/// <summary>
/// One quantity parser: what the validator accepts is exactly what the Docker conversion accepts, and its
/// value is Kubernetes' (KubernetesClient's <see cref="ResourceQuantity"/>, a port of resource.Quantity, is the oracle).
/// </summary>
public class QuantityTests
{
    /// <summary>Where a quantity goes in an AppDeployment, and how to read back what the stack made of it.</summary>
    private sealed record Site(string Path, QuantityField Field, Action<AppDeploymentSpec, string> Set, Func<DesiredStack, long?> Converted);

    private static readonly Site[] Sites =
    [
        new("spec.app.resources.memory", Quantity.Memory, (s, v) => s.App.Resources = new ResourceLimits { Memory = v }, d => d.AppContainer(1, d.Image, false).MemoryBytes),
        new("spec.app.resources.cpu", Quantity.Cpu, (s, v) => s.App.Resources = new ResourceLimits { Cpu = v }, d => d.AppContainer(1, d.Image, false).NanoCpus / 1_000_000),
        new("spec.database.resources.memory", Quantity.Memory, (s, v) => s.Database!.Resources = new ResourceLimits { Memory = v }, d => d.Database!.Container.MemoryBytes),
        new("spec.database.resources.cpu", Quantity.Cpu, (s, v) => s.Database!.Resources = new ResourceLimits { Cpu = v }, d => d.Database!.Container.NanoCpus / 1_000_000),
        new("spec.cache.resources.memory", Quantity.Memory, (s, v) => s.Cache!.Resources = new ResourceLimits { Memory = v }, d => d.Cache!.Container.MemoryBytes),
        new("spec.cache.maxMemory", Quantity.MaxMemory, (s, v) => s.Cache!.MaxMemory = v, MaxMemoryOf),
        new("spec.database.storage.size", Quantity.StorageSize, (s, v) => s.Database!.Storage = new StorageSpec { Size = v }, _ => null),
        new("spec.cache.storage.size", Quantity.StorageSize, (s, v) => s.Cache!.Storage = new StorageSpec { Size = v }, _ => null),
    ];

    private static readonly Regex CrdPattern = new(Patterns.Quantity, RegexOptions.CultureInvariant);

    private static long? MaxMemoryOf(DesiredStack d)
    {
        var cmd = d.Cache!.Container.Cmd!.ToList();
        var i = cmd.IndexOf("--maxmemory");
        return i < 0 ? null : long.Parse(cmd[i + 1], CultureInfo.InvariantCulture);
    }

    private static AppDeployment App(Site site, string text)
    {
        var app = ResourceValidatorTests.ValidApp();
        app.Spec.Cache = new CacheSpec { Persistence = PersistenceModes.Aof };
        site.Set(app.Spec, text);
        return app;
    }

    /// <summary>The validator's verdict on the field, and what the stack built from it (null: it refused to build).</summary>
    private static (string? Error, bool Built, long? Value) Through(Site site, string text)
    {
        var app = App(site, text);
        var error = ResourceValidator.Validate(app).FirstOrDefault(e => e.Path == site.Path)?.Message;
        try
        {
            var inputs = new ResolvedInputs(new DatabaseCredentials("app", "pw", "app"), new Dictionary<string, string>(), new Dictionary<string, Skiff.Reconcile.RegistryAuth>());
            var stack = DesiredStack.Build(app, inputs, new StackContext("vps-1", "src", "test"));
            return (error, true, site.Converted(stack));
        }
        catch (InvalidOperationException)
        {
            return (error, false, null);
        }
    }

    /// <summary>Kubernetes' value of a quantity in bytes (or millicores with <paramref name="scale"/> 1000), rounded up like Value()/MilliValue().</summary>
    private static decimal Oracle(string text, int scale) => decimal.Ceiling(new ResourceQuantity(text).ToDecimal() * scale);

    /// <summary>Quantities in the CRD's grammar, of every size: leading zeros, fractions, every suffix.</summary>
    private static readonly Gen<string> Wellformed = Gen.Select(
        Gen.OneOf(Gen.Int[0, 9999].Select(i => i.ToString(CultureInfo.InvariantCulture)), Gen.Char["0123456789"].Array[1, 19].Select(c => new string(c))),
        Gen.OneOf(Gen.Const(""), Gen.Char["0123456789"].Array[1, 6].Select(c => "." + new string(c))),
        Gen.OneOf<string>("", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"),
        (number, fraction, suffix) => number + fraction + suffix);

    /// <summary>Near misses: what Kubernetes' own parser accepts but the CRD pattern does not, and plain garbage.</summary>
    private static readonly Gen<string> Anything = Gen.OneOf(
        Wellformed,
        Gen.Select(Gen.OneOf<string>("+", "-", " ", ".", ""), Wellformed, Gen.OneOf<string>("", " ", "e3", "E2", "i", "B", "K", "mi", "n", "u", "."), (a, b, c) => a + b + c),
        Gen.String[0, 12],
        Gen.Char["0123456789.mkMGTPEi+-e "].Array[0, 10].Select(c => new string(c)));

    [Fact]
    public void Every_quantity_the_validator_accepts_converts_to_the_value_Kubernetes_gives_and_nothing_else_converts()
    {
        Gen.Select(Gen.Int[0, Sites.Length - 1], Anything).Sample((index, text) =>
        {
            var site = Sites[index];
            var (error, built, value) = Through(site, text);
            var converts = site.Field.TryConvert(text, out var direct, out var fieldError);

            // One parser: the validator accepts exactly what converts, and the stack is built exactly then.
            Assert.Equal(error is null, converts);
            Assert.Equal(error, fieldError);
            // The stack is built exactly from what converts (a storage size is advisory on Docker: never converted).
            var advisory = site.Path.EndsWith(".size", StringComparison.Ordinal);
            Assert.Equal(converts || advisory, built);
            // Skiff's grammar is the CRD's pattern, which the API server applies.
            Assert.Equal(CrdPattern.IsMatch(text), Quantity.TryParseExact(text, out _, out _));
            if (!converts)
            {
                return;
            }

            var oracle = Oracle(text, site.Field.Unit == QuantityUnit.MilliCpu ? 1000 : 1);
            Assert.Equal(oracle, direct);
            if (advisory)
            {
                Assert.Null(value);
            }
            else
            {
                Assert.Equal<decimal?>(oracle, value);
            }
        }, iter: 3000);
    }

    [Fact]
    public void A_quantity_out_of_a_fields_range_is_out_of_it_for_Kubernetes_too()
    {
        Gen.Select(Gen.Int[0, Sites.Length - 1], Wellformed).Sample((index, text) =>
        {
            var field = Sites[index].Field;
            if (field.TryConvert(text, out _, out _) || !Quantity.TryParseExact(text, out _, out _))
            {
                return;
            }

            var q = new ResourceQuantity(text);
            var scale = field.Unit == QuantityUnit.MilliCpu ? 1000 : 1;
            // ResourceQuantity caps binary suffixes at 2^63-1 (no field goes that far: refused for being too large);
            // past decimal's range only the magnitude matters.
            var capped = q.Format == ResourceQuantity.SuffixFormat.BinarySI && q.ToDecimal() == ResourceQuantity.MaxAllowed;
            var magnitude = q.ToDouble() * scale;
            var outside = capped || (magnitude > 1e27
                ? magnitude > field.Maximum
                : Oracle(text, scale) < field.Minimum || Oracle(text, scale) > field.Maximum);
            Assert.True(outside, $"{text} was refused for a field of {field.Minimum}..{field.Maximum}");
        }, iter: 3000);
    }

    [Theory]
    [InlineData("1Pi", 1125899906842624L)]
    [InlineData("4Pi", 4503599627370496L)]
    [InlineData("6Mi", 6291456L)]
    [InlineData("1.5Gi", 1610612736L)]
    [InlineData("512M", 512_000_000L)]
    [InlineData("6291456.001", 6291457L)]
    public void Memory_converts_to_Kubernetes_bytes(string text, long bytes)
    {
        Assert.Equal(bytes, Quantity.MemoryBytes(text));
        Assert.Equal(bytes, (long)Oracle(text, 1));
    }

    [Theory]
    [InlineData("500m", 500_000_000L)]
    [InlineData("0.5", 500_000_000L)]
    [InlineData("2", 2_000_000_000L)]
    [InlineData("10m", 10_000_000L)]
    [InlineData("0.0101", 11_000_000L)] // Kubernetes' MilliValue rounds 10.1m up to 11m
    [InlineData("8192", 8_192_000_000_000L)]
    public void Cpu_converts_to_Kubernetes_millicores_as_Docker_nanocpus(string text, long nanoCpus) =>
        Assert.Equal(nanoCpus, Quantity.NanoCpus(text));

    [Theory]
    [InlineData("spec.app.resources.memory", "1Ei", "must be at most 4Pi (more memory than any host can address), got \"1Ei\"")]
    [InlineData("spec.app.resources.memory", "4.1Pi", "must be at most 4Pi (more memory than any host can address), got \"4.1Pi\"")]
    [InlineData("spec.database.resources.memory", "9Ei", "must be at most 4Pi (more memory than any host can address), got \"9Ei\"")]
    [InlineData("spec.app.resources.memory", "0", "must be at least 6Mi (Docker's smallest memory limit; omit the field for no limit), got \"0\"")]
    [InlineData("spec.cache.resources.memory", "512", "must be at least 6Mi (Docker's smallest memory limit; omit the field for no limit), got \"512\"")]
    [InlineData("spec.app.resources.cpu", "0", "must be at least 10m (Docker's smallest CPU limit, 0.01 CPU; omit the field for no limit), got \"0\"")]
    [InlineData("spec.app.resources.cpu", "1Ei", "must be at most 8192 (the most CPUs Linux supports), got \"1Ei\"")]
    [InlineData("spec.cache.maxMemory", "0", "must be at least 1Mi (Redis warns below 1 MB; omit the field for no limit), got \"0\"")]
    [InlineData("spec.cache.maxMemory", "1E", "must be at most 4Pi (more memory than any host can address), got \"1E\"")]
    [InlineData("spec.database.storage.size", "8Ei", "must be at most 8Ei minus one byte (2^63-1 bytes), got \"8Ei\"")]
    [InlineData("spec.database.storage.size", "0", "must be at least 1 byte, got \"0\"")]
    [InlineData("spec.app.resources.memory", "1PB", "must be a quantity such as 512Mi, 1Gi, 500m or 2, got \"1PB\"")]
    public void A_value_Docker_cannot_apply_is_an_error_naming_the_field(string path, string text, string message)
    {
        var site = Sites.First(s => s.Path == path);
        var (error, built, _) = Through(site, text);
        Assert.Equal(message, error);
        Assert.Equal(path.EndsWith(".size", StringComparison.Ordinal), built); // a limit that cannot be applied is never "no limit"
        Assert.Contains(new ValidationError(path, message).ToString(), ResourceValidator.Validate(App(site, text)).Select(e => e.ToString()));
    }

    [Fact]
    public void An_unset_limit_is_no_limit_and_only_then()
    {
        Assert.Null(Quantity.MemoryBytes(null));
        Assert.Null(Quantity.NanoCpus(null));
        Assert.Null(Quantity.MaxMemoryBytes(null));
        Assert.Throws<InvalidOperationException>(() => Quantity.MemoryBytes("1Ei"));
        Assert.Throws<InvalidOperationException>(() => Quantity.MemoryBytes(""));
    }

    [Fact]
    public void Every_quantity_field_of_the_resource_has_bounds()
    {
        var quantities = typeof(AppDeploymentSpec).Assembly.GetTypes()
            .Where(t => t.Namespace == "Skiff.Api")
            .SelectMany(t => t.GetProperties())
            .Where(p => p.GetCustomAttribute<QuantityAttribute>() is not null)
            .Select(p => p.GetCustomAttribute<JsonPropertyNameAttribute>()!.Name)
            .Distinct()
            .ToList();
        Assert.Equal(["cpu", "maxMemory", "memory", "size"], quantities.Order(StringComparer.Ordinal));
        Assert.All(quantities, name => Assert.NotNull(Quantity.ForField(name)));
    }
}
