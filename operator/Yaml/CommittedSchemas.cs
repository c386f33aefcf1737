using System.Text.Json.Nodes;
using Skiff.Api;
using Skiff.Crds;

namespace Skiff.Yaml;

/// <summary>
/// The schemas documents are checked against: those of the CRDs committed under <c>crds/</c> and embedded at
/// build time, equal to <see cref="CrdGenerator"/>'s output (a golden test keeps the files so). Reading them
/// takes a fraction of generating them, which every command that loads a document would otherwise pay at start-up.
/// </summary>
public static class CommittedSchemas
{
    private static readonly Lazy<JsonObject> AppDeploymentCrd = new(() => Read(CrdGenerator.AppDeploymentsFile));
    private static readonly Lazy<JsonObject> ImageGCPolicyCrd = new(() => Read(CrdGenerator.ImageGCPoliciesFile));

    /// <summary>The openAPIV3Schema of a kind (shared, do not modify), or null for kinds Skiff does not define.</summary>
    public static JsonObject? OpenApiSchema(string kind) => kind switch
    {
        AppDeployment.KindName => CrdGenerator.SchemaOf(AppDeploymentCrd.Value),
        ImageGCPolicy.KindName => CrdGenerator.SchemaOf(ImageGCPolicyCrd.Value),
        _ => null,
    };

    private static JsonObject Read(string fileName)
    {
        using var stream = typeof(CommittedSchemas).Assembly.GetManifestResourceStream("Skiff.Crds." + fileName)
            ?? throw new InvalidOperationException($"the CRD {fileName} is not embedded in skiff.dll: build it from the repository, which holds crds/");
        using var reader = new StreamReader(stream);
        var document = YamlReader.Read(reader.ReadToEnd()).Single();
        return document.Root as JsonObject
            ?? throw new InvalidOperationException($"the embedded CRD {fileName} does not parse: {string.Join("; ", document.Errors)}");
    }
}
