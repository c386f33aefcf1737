namespace Skiff.IntegrationTests.Infrastructure;

/// <summary>Tests that use the real Docker engine share one <see cref="DockerFixture"/>: <c>[Collection(DockerCollection.Name)]</c>.</summary>
[CollectionDefinition(Name)]
public sealed class DockerCollection : ICollectionFixture<DockerFixture>
{
    public const string Name = "Docker engine";
}
