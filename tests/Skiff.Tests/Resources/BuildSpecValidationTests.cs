using Skiff.Api;
using Skiff.Validation;

namespace Skiff.Tests.Resources;

/// <summary><c>spec.app.build</c>: exactly one of image and build, a context and Dockerfile inside the tree, and the Git source only.</summary>
public sealed class BuildSpecValidationTests
{
    private static AppDeployment Built(Action<BuildSpec>? edit = null)
    {
        var app = ResourceValidatorTests.ValidApp();
        app.Spec.App.Image = "";
        app.Spec.App.Build = new BuildSpec { Context = "app", Dockerfile = "docker/Dockerfile", Args = [new BuildArg { Name = "VERSION", Value = "1" }] };
        edit?.Invoke(app.Spec.App.Build);
        return app;
    }

    private static string One(AppDeployment app) => Assert.Single(ResourceValidator.Validate(app)).ToString();

    [Fact]
    public void A_build_instead_of_an_image_is_valid()
    {
        Assert.Empty(ResourceValidator.Validate(Built()));
        Assert.Empty(ResourceValidator.Validate(Built(b => { b.Context = null; b.Dockerfile = null; b.Args = null; })));
        Assert.Empty(ResourceValidator.Validate(Built(b => b.Context = ".")));
    }

    [Fact]
    public void Neither_image_nor_build_names_both_fixes()
    {
        var app = Built();
        app.Spec.App.Build = null;
        Assert.Equal("spec.app.image: required: set image (an image from a registry), or build (an image built on the node, with the Git source)", One(app));
    }

    [Theory]
    [InlineData("../other", "spec.app.build.context: must stay inside the repository (no '..'), got \"../other\": give a folder of the repository relative to its root, such as . or app")]
    [InlineData("/srv/app", "spec.app.build.context: must be a relative path with '/' separators, got \"/srv/app\": give a folder of the repository relative to its root, such as . or app")]
    public void A_context_outside_the_tree_is_refused(string context, string expected) =>
        Assert.Equal(expected, One(Built(b => b.Context = context)));

    [Fact]
    public void A_dockerfile_outside_the_context_or_empty_is_refused()
    {
        Assert.Equal("spec.app.build.dockerfile: must stay inside the repository (no '..'), got \"../Dockerfile\": give a file relative to the context, such as Dockerfile",
            One(Built(b => b.Dockerfile = "../Dockerfile")));
        Assert.Equal("spec.app.build.dockerfile: must not be empty: give a file relative to the context, such as Dockerfile", One(Built(b => b.Dockerfile = "")));
    }

    [Fact]
    public void Args_are_named_once_each()
    {
        var app = Built(b => b.Args!.Add(new BuildArg { Name = "VERSION", Value = "2" }));
        Assert.Equal("spec.app.build.args[1].name: duplicate argument \"VERSION\": each argument may appear once", One(app));
    }

    [Fact]
    public void Only_the_Git_source_builds_and_the_error_says_what_to_do_instead()
    {
        Assert.Null(ResourceValidator.BuildNeedsGitSource(ResourceValidatorTests.ValidApp().Spec));
        var error = ResourceValidator.BuildNeedsGitSource(Built().Spec);
        Assert.Equal(
            "spec.app.build: builds need the Git source (skiff run --source git --url URL), which builds the image from the commit it serves: "
            + "with this source, build and push the image in CI and set spec.app.image instead (examples/ci/)",
            error?.ToString());
    }
}
